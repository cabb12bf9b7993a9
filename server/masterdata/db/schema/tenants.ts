import { jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { metaColumns, type StoredQuotas } from "./columns.js";

/** Organisations and users; the owners of projects. */
export const tenants = pgTable("tenants", {
  ...metaColumns(),
  name: text("name").notNull().default(""),
  description: text("description").notNull().default(""),
  defaultQuotas: jsonb("default_quotas").$type<StoredQuotas>().notNull().default({}),
  quotas: jsonb("quotas").$type<StoredQuotas>().notNull().default({}),
});

export type TenantRow = typeof tenants.$inferSelect;
export type NewTenantRow = typeof tenants.$inferInsert;
