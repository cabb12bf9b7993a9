import { Code } from "@connectrpc/connect";
import type { DbHandle } from "../../db/handle.js";
import { OUTCOME_OK, projectOf, targetIdsOf } from "../../domain/audit.js";
import type { Principal } from "../../domain/roles.js";
import { uuidv7 } from "../../ids.js";
import { type AuditQuery, auditRepository, type NewAuditEntry } from "../../repositories/audit-repository.js";
import { redactRequest, storable } from "./redact.js";

export type AuditEntry = NewAuditEntry;
export type { AuditQuery };

/** What one recorded call or console open is, before its outcome is known. */
export interface AuditCall {
  method: string;
  principal: Principal | undefined;
  requestId: string;
  /** The request as proto JSON (unredacted: redaction happens here). */
  request: unknown;
}

/** A new entry for `call`, its outcome "ok" until told otherwise. */
export function newEntry(call: AuditCall, now = new Date()): AuditEntry {
  const request = redactRequest(call.request);
  const project = projectOf(request);
  return {
    id: uuidv7(now.getTime()),
    at: now,
    subject: call.principal?.subject ?? "",
    tokenId: call.principal?.tokenId ?? "",
    method: call.method,
    targetIds: targetIdsOf(request),
    requestId: call.requestId,
    outcome: OUTCOME_OK,
    errorMessage: "",
    request,
    project: project ?? null,
  };
}

/** "AlreadyExists" -> "already_exists": the Connect protocol's own spelling of a code. */
export function outcomeOf(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** Internal errors may carry what the server never shows (SQL, parameters): the trail keeps their code only. */
export function errorMessageOf(code: Code, message: string): string {
  return code === Code.Internal || code === Code.Unknown ? "internal error (the server log has it under the request id)" : storable(message);
}

export const auditTrail = {
  /** Writes an entry with `db` (a transaction of the change, or the pool for one of its own). */
  record: (db: DbHandle, entry: AuditEntry): Promise<void> => auditRepository.insert(db, entry),
  /** The call failed after its entry committed with the change: the entry tells how the call ended. */
  markFailed: (db: DbHandle, id: string, outcome: string, message: string): Promise<void> => auditRepository.setOutcome(db, id, outcome, message),
  get: (db: DbHandle, id: string) => auditRepository.get(db, id),
  list: (db: DbHandle, q: AuditQuery) => auditRepository.list(db, q),
};
