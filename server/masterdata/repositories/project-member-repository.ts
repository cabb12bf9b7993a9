import { eq } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import type { PageRequest } from "../../repositories/paging.js";
import { projectMembers } from "../db/schema/index.js";
import { createEntityStore, type MetaFilter } from "./entity-store.js";

export interface ProjectMemberFilter extends MetaFilter {
  projectId?: string;
  tenantId?: string;
}

const store = createEntityStore(projectMembers, {
  kind: "ProjectMember",
  label: "project member",
  duplicate: {
    project_members_project_tenant_key: (r) => `"${String(r.tenantId)}" is already a member of project "${String(r.projectId)}"`,
  },
});

/** Memberships of tenants in projects. */
export const projectMemberRepository = {
  ...store,

  find: (db: DbHandle, f: ProjectMemberFilter, page: PageRequest) =>
    store.page(db, [f.projectId !== undefined ? eq(projectMembers.projectId, f.projectId) : undefined, f.tenantId !== undefined ? eq(projectMembers.tenantId, f.tenantId) : undefined], f, page),

  /** Deletes the memberships of the project. */
  deleteOfProject: (tx: DbHandle, projectId: string) => store.deleteWhere(tx, eq(projectMembers.projectId, projectId)),

  /** Deletes the project memberships the tenant holds as a member. */
  deleteOfTenant: (tx: DbHandle, tenantId: string) => store.deleteWhere(tx, eq(projectMembers.tenantId, tenantId)),
};
