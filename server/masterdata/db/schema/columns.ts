import { bigint, jsonb, text, timestamp } from "drizzle-orm/pg-core";

/** Limits as stored: only the `max` of each quota; absent means unlimited. */
export interface StoredQuotas {
  machine?: number;
  ip?: number;
  network?: number;
  project?: number;
}

/** Columns every masterdata entity has: its meta. */
export const metaColumns = () => ({
  id: text("id").primaryKey(),
  annotations: jsonb("annotations").$type<Record<string, string>>().notNull().default({}),
  labels: text("labels").array().notNull().default([]),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  version: bigint("version", { mode: "number" }).notNull().default(1),
});
