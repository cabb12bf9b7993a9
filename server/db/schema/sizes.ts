import { index, integer, jsonb, pgTable, text } from "drizzle-orm/pg-core";
import type { Constraint } from "../../domain/size.js";
import { bookkeeping } from "./columns.js";

export const sizes = pgTable("sizes", {
  id: text("id").primaryKey(),
  name: text("name").notNull().default(""),
  description: text("description").notNull().default(""),
  constraints: jsonb("constraints").$type<Constraint[]>().notNull(),
  labels: jsonb("labels").$type<Record<string, string>>().notNull().default({}),
  ...bookkeeping(),
});

export const sizeReservations = pgTable(
  "size_reservations",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull().default(""),
    description: text("description").notNull().default(""),
    // RESTRICT: a size cannot be deleted while reservations use it.
    sizeId: text("size_id")
      .notNull()
      .references(() => sizes.id, { onDelete: "restrict" }),
    project: text("project").notNull(),
    partitionIds: text("partition_ids").array().notNull(),
    amount: integer("amount").notNull(),
    labels: jsonb("labels").$type<Record<string, string>>().notNull().default({}),
    ...bookkeeping(),
  },
  (t) => [index("size_reservations_project_idx").on(t.project), index("size_reservations_size_idx").on(t.sizeId)],
);

export type SizeRow = typeof sizes.$inferSelect;
export type NewSizeRow = typeof sizes.$inferInsert;
export type SizeReservationRow = typeof sizeReservations.$inferSelect;
export type NewSizeReservationRow = typeof sizeReservations.$inferInsert;
