import { eq, or } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import type { PageRequest } from "../../repositories/paging.js";
import { tenantMembers } from "../db/schema/index.js";
import { createEntityStore, type MetaFilter } from "./entity-store.js";

export interface TenantMemberFilter extends MetaFilter {
  tenantId?: string;
  memberId?: string;
}

const store = createEntityStore(tenantMembers, {
  kind: "TenantMember",
  label: "tenant member",
  duplicate: {
    tenant_members_tenant_member_key: (r) => `"${String(r.memberId)}" is already a member of tenant "${String(r.tenantId)}"`,
  },
});

/** Memberships of tenants in tenants. */
export const tenantMemberRepository = {
  ...store,

  find: (db: DbHandle, f: TenantMemberFilter, page: PageRequest) =>
    store.page(db, [f.tenantId !== undefined ? eq(tenantMembers.tenantId, f.tenantId) : undefined, f.memberId !== undefined ? eq(tenantMembers.memberId, f.memberId) : undefined], f, page),

  /** Deletes the memberships in which the tenant is the host or the member. */
  deleteOfTenant: (tx: DbHandle, tenantId: string) => store.deleteWhere(tx, or(eq(tenantMembers.tenantId, tenantId), eq(tenantMembers.memberId, tenantId))!),
};
