import { sql } from "drizzle-orm";
import { check, index, integer, pgTable, text, unique } from "drizzle-orm/pg-core";
import { metaColumns } from "./columns.js";
import { projects } from "./projects.js";
import { tenants } from "./tenants.js";

/** Memberships of tenants (usually users) in projects; at most one per pair. */
export const projectMembers = pgTable(
  "project_members",
  {
    ...metaColumns(),
    projectId: text("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "restrict" }),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "restrict" }),
    /** masterdata.v1.ProjectMemberRole: 1 viewer, 2 editor, 3 owner. */
    role: integer("role").notNull(),
  },
  (t) => [unique("project_members_project_tenant_key").on(t.projectId, t.tenantId), index("project_members_tenant_id_idx").on(t.tenantId), check("project_members_role_check", sql`${t.role} between 1 and 3`)],
);

export type ProjectMemberRow = typeof projectMembers.$inferSelect;
export type NewProjectMemberRow = typeof projectMembers.$inferInsert;
