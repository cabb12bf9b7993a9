import { and, count, eq } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import { type ProjectMemberRow, projectMembers, type TenantMemberRow, tenantMembers } from "../db/schema/index.js";

const OWNER = 3;

/** Memberships looked up by their pair, and the owner counts the last-owner rule needs. */
export const membershipRepository = {
  async tenantMembership(db: DbHandle, tenantId: string, memberId: string): Promise<TenantMemberRow | undefined> {
    const [row] = await db
      .select()
      .from(tenantMembers)
      .where(and(eq(tenantMembers.tenantId, tenantId), eq(tenantMembers.memberId, memberId)));
    return row;
  },

  async projectMembership(db: DbHandle, projectId: string, memberId: string): Promise<ProjectMemberRow | undefined> {
    const [row] = await db
      .select()
      .from(projectMembers)
      .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.tenantId, memberId)));
    return row;
  },

  /** The tenant's owner members; exact while the caller holds the tenant's row lock. */
  async tenantOwners(tx: DbHandle, tenantId: string): Promise<number> {
    const [row] = await tx
      .select({ n: count() })
      .from(tenantMembers)
      .where(and(eq(tenantMembers.tenantId, tenantId), eq(tenantMembers.role, OWNER)));
    return row?.n ?? 0;
  },

  /** The project's direct owners; exact while the caller holds the project's row lock. */
  async projectOwners(tx: DbHandle, projectId: string): Promise<number> {
    const [row] = await tx
      .select({ n: count() })
      .from(projectMembers)
      .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.role, OWNER)));
    return row?.n ?? 0;
  },
};
