import { index, jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { metaColumns, type StoredQuotas } from "./columns.js";
import { tenants } from "./tenants.js";

/** Projects, each owned by one tenant for its whole life. */
export const projects = pgTable(
  "projects",
  {
    ...metaColumns(),
    name: text("name").notNull().default(""),
    description: text("description").notNull().default(""),
    // RESTRICT: a tenant with projects cannot disappear, whatever the code above does.
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "restrict" }),
    quotas: jsonb("quotas").$type<StoredQuotas>().notNull().default({}),
  },
  (t) => [index("projects_tenant_id_idx").on(t.tenantId)],
);

export type ProjectRow = typeof projects.$inferSelect;
export type NewProjectRow = typeof projects.$inferInsert;
