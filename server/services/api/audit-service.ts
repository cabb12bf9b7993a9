import type { ServiceImpl } from "@connectrpc/connect";
import type { AuditService } from "../../../gen/metal/api/v1/audit_pb.js";
import { auditQueryOf, toProtoAuditEntry } from "../../convert/audit.js";
import type { DbHandle } from "../../db/handle.js";
import { listAuditEntries } from "../../usecases/audit/list.js";

/** Project members read their project's audit trail: the interceptor checked the project role. */
export function createAuditService({ db }: { db: DbHandle }): ServiceImpl<typeof AuditService> {
  return {
    async list(req) {
      const page = await listAuditEntries(db, { filter: auditQueryOf(req.filter), project: req.project || undefined, projectRequired: true, paging: req.paging });
      return { entries: page.items.map(toProtoAuditEntry), nextPageToken: page.nextPageToken };
    },
  };
}
