import { bigint, jsonb, text, timestamp } from "drizzle-orm/pg-core";

/** Limits as stored: only the `max` of each quota; absent means unlimited. */
export interface StoredQuotas {
  machine?: number;
  ip?: number;
  network?: number;
  project?: number;
}

/**
 * Milliseconds, like a JavaScript Date: a time read back from a row is exactly
 * the stored one, so GetHistory at a returned `updated_time` finds that version.
 */
export const instant = (name: string) => timestamp(name, { withTimezone: true, mode: "date", precision: 3 });

/** Columns every masterdata entity has: its meta. */
export const metaColumns = () => ({
  id: text("id").primaryKey(),
  annotations: jsonb("annotations").$type<Record<string, string>>().notNull().default({}),
  labels: text("labels").array().notNull().default([]),
  createdAt: instant("created_at").notNull().defaultNow(),
  updatedAt: instant("updated_at").notNull().defaultNow(),
  version: bigint("version", { mode: "number" }).notNull().default(1),
});
