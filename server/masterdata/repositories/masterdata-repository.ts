import { count, eq, or } from "drizzle-orm";
import type { Db } from "../../db/database.js";
import { projectMembers, projects, tenantMembers, tenants } from "../db/schema/index.js";
import { createStore } from "./store.js";

/** The masterdata entities; the stores are the only code here that writes SQL. */
export const tenantStore = createStore(tenants, "Tenant", "tenant");
export const projectStore = createStore(projects, "Project", "project");
export const tenantMemberStore = createStore(tenantMembers, "TenantMember", "tenant member");
export const projectMemberStore = createStore(projectMembers, "ProjectMember", "project member");

export async function countProjectsOf(tx: Db<any>, tenantId: string): Promise<number> {
  const [row] = await tx.select({ n: count() }).from(projects).where(eq(projects.tenantId, tenantId));
  return row?.n ?? 0;
}

export const membershipsOfTenant = (tenantId: string) => or(eq(tenantMembers.tenantId, tenantId), eq(tenantMembers.memberId, tenantId))!;
export const projectMembershipsOfTenant = (tenantId: string) => eq(projectMembers.tenantId, tenantId);
export const membershipsOfProject = (projectId: string) => eq(projectMembers.projectId, projectId);

export { projectMembers, projects, tenantMembers, tenants };
