import type { DbHandle } from "../../db/handle.js";
import type { AuditRow } from "../../db/schema/audit.js";
import { invalidArgument } from "../../errors.js";
import { pageRequest, toPage } from "../../repositories/paging.js";
import { type AuditQuery, auditTrail } from "./entries.js";

/** What a list asks for, from either service (the tenant's always names its project). */
export interface AuditListRequest {
  filter: Omit<AuditQuery, "limit" | "before" | "project">;
  project: string | undefined;
  /** The tenants' list: a project must be named. */
  projectRequired?: boolean;
  paging: { limit: number; pageToken: string } | undefined;
}

const MAX_FILTER_CHARS = 512;

/** One page of entries, newest first. */
export async function listAuditEntries(db: DbHandle, req: AuditListRequest): Promise<{ items: AuditRow[]; nextPageToken: string }> {
  const page = pageRequest(req.paging);
  if (req.projectRequired && !req.project) throw invalidArgument("invalid request: project: required");
  for (const [name, value] of Object.entries({ ...req.filter, project: req.project })) {
    if (typeof value === "string" && value.length > MAX_FILTER_CHARS) throw invalidArgument(`invalid request: ${name}: at most ${MAX_FILTER_CHARS} characters`);
  }
  if (req.filter.from && req.filter.to && req.filter.from >= req.filter.to) throw invalidArgument("invalid request: filter.from must be before filter.to");
  const rows = await auditTrail.list(db, { ...req.filter, project: req.project, before: page.after, limit: page.limit });
  return toPage(rows, page.limit, (r) => r.id);
}
