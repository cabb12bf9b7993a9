import { sql } from "drizzle-orm";
import { check, index, integer, pgTable, text } from "drizzle-orm/pg-core";
import { instant } from "./columns.js";
import { projects } from "./projects.js";
import { tenants } from "./tenants.js";

/**
 * Pending invitations into a tenant or a project. The secret is never
 * stored: only its SHA-256, which is what a holder is looked up by. A row is
 * deleted when it is accepted (single use) or withdrawn; expired rows are
 * never found and are pruned when their target gets a new invitation.
 * Deleting the tenant or project deletes its invitations.
 */
export const invitations = pgTable(
  "invitations",
  {
    id: text("id").primaryKey(),
    /** Hex SHA-256 of the secret. */
    secretHash: text("secret_hash").notNull().unique("invitations_secret_hash_key"),
    /** "tenant" or "project". */
    target: text("target").$type<"tenant" | "project">().notNull(),
    /** The tenant invited into, or the tenant of the project invited into. */
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    /** The project invited into; null for a tenant invitation. */
    projectId: text("project_id").references(() => projects.id, { onDelete: "cascade" }),
    /** 1 viewer, 2 editor, 3 owner. */
    role: integer("role").notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: instant("created_at").notNull().defaultNow(),
    expiresAt: instant("expires_at").notNull(),
  },
  (t) => [
    index("invitations_tenant_id_idx").on(t.tenantId),
    index("invitations_project_id_idx").on(t.projectId),
    check("invitations_role_check", sql`${t.role} between 1 and 3`),
    check("invitations_target_check", sql`(${t.target} = 'tenant' and ${t.projectId} is null) or (${t.target} = 'project' and ${t.projectId} is not null)`),
  ],
);

export type InvitationRow = typeof invitations.$inferSelect;
export type NewInvitationRow = typeof invitations.$inferInsert;
