import { create } from "@bufbuild/protobuf";
import { type Project, ProjectSchema } from "../../../gen/masterdata/v1/project_pb.js";
import type { NewProjectRow, ProjectRow, StoredQuotas } from "../db/schema/index.js";
import { metaColumnsFrom, newId, toMeta } from "./meta.js";
import { fromQuotaSet, toQuotaSet } from "./quota.js";

const PROJECT_KIND = "Project";

export function toProject(row: ProjectRow): Project {
  return create(ProjectSchema, {
    meta: toMeta(PROJECT_KIND, row),
    name: row.name,
    description: row.description,
    tenantId: row.tenantId,
    quotas: toQuotaSet(row.quotas),
  });
}

/** The columns an update replaces; the tenant is not among them. */
export function projectPatchFrom(p: Project): Omit<NewProjectRow, "id" | "tenantId"> {
  return { ...metaColumnsFrom(p.meta), name: p.name, description: p.description, quotas: fromQuotaSet(p.quotas) };
}

/**
 * The new row. `defaultQuotas` (the tenant's) apply when the request has no
 * quotas message at all; a present but empty one means unlimited.
 */
export function projectRowFromCreate(p: Project, defaultQuotas: StoredQuotas): NewProjectRow {
  return {
    id: newId(p.meta),
    ...projectPatchFrom(p),
    tenantId: p.tenantId,
    quotas: p.quotas ? fromQuotaSet(p.quotas) : { ...defaultQuotas },
  };
}
