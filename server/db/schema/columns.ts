import { bigint, timestamp } from "drizzle-orm/pg-core";

/** Bookkeeping columns of every stored entity; `version` drives optimistic locking. */
export const bookkeeping = () => ({
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  version: bigint("version", { mode: "number" }).notNull().default(1),
});
