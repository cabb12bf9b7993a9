import { index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import type { LayoutSpec } from "../../domain/filesystem-layout.js";
import { bookkeeping } from "./columns.js";

export const images = pgTable(
  "images",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull().default(""),
    description: text("description").notNull().default(""),
    url: text("url").notNull(),
    features: integer("features").array().notNull(),
    os: text("os").notNull(),
    osVersion: text("os_version").notNull(),
    classification: integer("classification").notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    labels: jsonb("labels").$type<Record<string, string>>().notNull().default({}),
    ...bookkeeping(),
  },
  (t) => [index("images_os_idx").on(t.os)],
);

/** One row per constrained size; the id is the size id. */
export const sizeImageConstraints = pgTable("size_image_constraints", {
  id: text("id").primaryKey(),
  images: jsonb("images").$type<Record<string, string>>().notNull(),
  ...bookkeeping(),
});

export const filesystemLayouts = pgTable("filesystem_layouts", {
  id: text("id").primaryKey(),
  name: text("name").notNull().default(""),
  description: text("description").notNull().default(""),
  spec: jsonb("spec").$type<LayoutSpec>().notNull(),
  ...bookkeeping(),
});

export type ImageRow = typeof images.$inferSelect;
export type NewImageRow = typeof images.$inferInsert;
export type SizeImageConstraintRow = typeof sizeImageConstraints.$inferSelect;
export type FilesystemLayoutRow = typeof filesystemLayouts.$inferSelect;
export type NewFilesystemLayoutRow = typeof filesystemLayouts.$inferInsert;
