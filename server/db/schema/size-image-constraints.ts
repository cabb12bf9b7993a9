import { jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { bookkeeping } from "./columns.js";

/**
 * One row per constrained size; the id is the size id. Deliberately no foreign
 * key to `sizes`: a constraint names a size by id only.
 */
export const sizeImageConstraints = pgTable("size_image_constraints", {
  id: text("id").primaryKey(),
  /** OS -> semver range, e.g. {"debian": ">= 12.1"}. */
  images: jsonb("images").$type<Record<string, string>>().notNull(),
  ...bookkeeping(),
});

export type SizeImageConstraintRow = typeof sizeImageConstraints.$inferSelect;
export type NewSizeImageConstraintRow = typeof sizeImageConstraints.$inferInsert;
