import { bigserial, index, integer, jsonb, pgTable, text, timestamp, unique } from "drizzle-orm/pg-core";
import { metaColumns, type StoredQuotas } from "./columns.js";

export const tenants = pgTable("tenants", {
  ...metaColumns(),
  name: text("name").notNull().default(""),
  description: text("description").notNull().default(""),
  defaultQuotas: jsonb("default_quotas").$type<StoredQuotas>().notNull().default({}),
  quotas: jsonb("quotas").$type<StoredQuotas>().notNull().default({}),
});

export const projects = pgTable(
  "projects",
  {
    ...metaColumns(),
    name: text("name").notNull().default(""),
    description: text("description").notNull().default(""),
    // RESTRICT: a tenant with projects cannot disappear, whatever the code above does.
    tenantId: text("tenant_id").notNull().references(() => tenants.id, { onDelete: "restrict" }),
    quotas: jsonb("quotas").$type<StoredQuotas>().notNull().default({}),
  },
  (t) => [index("projects_tenant_id_idx").on(t.tenantId)],
);

export const tenantMembers = pgTable(
  "tenant_members",
  {
    ...metaColumns(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id, { onDelete: "restrict" }),
    memberId: text("member_id").notNull().references(() => tenants.id, { onDelete: "restrict" }),
    role: integer("role").notNull(),
  },
  (t) => [unique("tenant_members_tenant_member_key").on(t.tenantId, t.memberId), index("tenant_members_member_id_idx").on(t.memberId)],
);

export const projectMembers = pgTable(
  "project_members",
  {
    ...metaColumns(),
    projectId: text("project_id").notNull().references(() => projects.id, { onDelete: "restrict" }),
    tenantId: text("tenant_id").notNull().references(() => tenants.id, { onDelete: "restrict" }),
    role: integer("role").notNull(),
  },
  (t) => [unique("project_members_project_tenant_key").on(t.projectId, t.tenantId), index("project_members_tenant_id_idx").on(t.tenantId)],
);

/** Every create, update and delete of every entity, written in the same transaction as the change. */
export const history = pgTable(
  "history",
  {
    seq: bigserial("seq", { mode: "number" }).primaryKey(),
    kind: text("kind").notNull(),
    entityId: text("entity_id").notNull(),
    op: text("op").$type<"create" | "update" | "delete">().notNull(),
    at: timestamp("at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    state: jsonb("state").$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index("history_entity_at_idx").on(t.kind, t.entityId, t.at)],
);

export type TenantRow = typeof tenants.$inferSelect;
export type ProjectRow = typeof projects.$inferSelect;
export type TenantMemberRow = typeof tenantMembers.$inferSelect;
export type ProjectMemberRow = typeof projectMembers.$inferSelect;
