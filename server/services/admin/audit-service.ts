import type { ServiceImpl } from "@connectrpc/connect";
import type { AuditService } from "../../../gen/metal/admin/v1/audit_pb.js";
import { auditQueryOf, toProtoAuditEntry } from "../../convert/audit.js";
import type { DbHandle } from "../../db/handle.js";
import { notFound } from "../../errors.js";
import { auditTrail } from "../../usecases/audit/entries.js";
import { listAuditEntries } from "../../usecases/audit/list.js";

/** Operators read the whole audit trail (docs/audit.md). */
export function createAdminAuditService({ db }: { db: DbHandle }): ServiceImpl<typeof AuditService> {
  return {
    async get(req) {
      // Ids are UUIDs; anything else cannot name an entry (and must not reach the query as garbage).
      const row = /^[0-9a-f-]{36}$/.test(req.id) ? await auditTrail.get(db, req.id) : undefined;
      if (!row) throw notFound("audit entry", req.id);
      return { entry: toProtoAuditEntry(row) };
    },
    async list(req) {
      const page = await listAuditEntries(db, { filter: auditQueryOf(req.filter), project: req.project || undefined, paging: req.paging });
      return { entries: page.items.map(toProtoAuditEntry), nextPageToken: page.nextPageToken };
    },
  };
}
