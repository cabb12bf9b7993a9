import { jsonb, pgTable, text } from "drizzle-orm/pg-core";
import type { LayoutSpec } from "../../domain/filesystem-layout.js";
import { bookkeeping } from "./columns.js";

/**
 * Filesystem layouts; everything but id, name and description is one JSON
 * document (the layout is always read and written whole). Sizes are named by
 * id only, without a foreign key to `sizes`.
 */
export const filesystemLayouts = pgTable("filesystem_layouts", {
  id: text("id").primaryKey(),
  name: text("name").notNull().default(""),
  description: text("description").notNull().default(""),
  spec: jsonb("spec").$type<LayoutSpec>().notNull(),
  ...bookkeeping(),
});

export type FilesystemLayoutRow = typeof filesystemLayouts.$inferSelect;
export type NewFilesystemLayoutRow = typeof filesystemLayouts.$inferInsert;
