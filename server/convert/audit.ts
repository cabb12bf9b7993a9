import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type AuditEntry, AuditEntrySchema, type AuditFilter } from "../../gen/metal/api/v1/audit_pb.js";
import type { AuditRow } from "../db/schema/audit.js";

export function toProtoAuditEntry(row: AuditRow): AuditEntry {
  return create(AuditEntrySchema, {
    id: row.id,
    time: timestampFromDate(row.at),
    subject: row.subject,
    tokenId: row.tokenId,
    method: row.method,
    targetIds: row.targetIds,
    requestId: row.requestId,
    outcome: row.outcome,
    errorMessage: row.errorMessage,
    request: row.request as JsonObject,
    project: row.project ?? "",
  });
}

/** The filter fields of a list request, as the repository takes them (strings already validated). */
export function auditQueryOf(f: AuditFilter | undefined): { from?: Date; to?: Date; subject?: string; method?: string; targetId?: string; outcome?: string } {
  return {
    from: f?.from ? timestampDate(f.from) : undefined,
    to: f?.to ? timestampDate(f.to) : undefined,
    subject: f?.subject || undefined,
    method: f?.method || undefined,
    targetId: f?.targetId || undefined,
    outcome: f?.outcome || undefined,
  };
}
