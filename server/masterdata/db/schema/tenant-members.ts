import { sql } from "drizzle-orm";
import { check, index, integer, pgTable, text, unique } from "drizzle-orm/pg-core";
import { metaColumns } from "./columns.js";
import { tenants } from "./tenants.js";

/** Memberships of tenants (usually users) in tenants; at most one per pair. */
export const tenantMembers = pgTable(
  "tenant_members",
  {
    ...metaColumns(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "restrict" }),
    memberId: text("member_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "restrict" }),
    /** masterdata.v1.TenantMemberRole: 1 viewer, 2 editor, 3 owner. */
    role: integer("role").notNull(),
  },
  (t) => [unique("tenant_members_tenant_member_key").on(t.tenantId, t.memberId), index("tenant_members_member_id_idx").on(t.memberId), check("tenant_members_role_check", sql`${t.role} between 1 and 3`)],
);

export type TenantMemberRow = typeof tenantMembers.$inferSelect;
export type NewTenantMemberRow = typeof tenantMembers.$inferInsert;
