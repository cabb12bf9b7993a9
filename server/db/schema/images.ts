import { index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { bookkeeping } from "./columns.js";

export const images = pgTable(
  "images",
  {
    /** "<os>-<version>", e.g. "debian-12.0.20241201". */
    id: text("id").primaryKey(),
    name: text("name").notNull().default(""),
    description: text("description").notNull().default(""),
    url: text("url").notNull(),
    /** Lowercase hex SHA-256 of the file at url; "" = unknown (metal-hammer then reads <url>.sha256). */
    sha256: text("sha256").notNull().default(""),
    /** ImageFeature values (metal.api.v1). */
    features: integer("features").array().notNull(),
    os: text("os").notNull(),
    /** The version as written in the id ("19.04.20200408"). */
    osVersion: text("os_version").notNull(),
    /** The version with leading zeros dropped ("19.4.20200408"): one OS cannot have "19.04.1" and "19.4.1". */
    versionKey: text("version_key").notNull(),
    /** ImageClassification value (metal.api.v1). */
    classification: integer("classification").notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    labels: jsonb("labels").$type<Record<string, string>>().notNull().default({}),
    ...bookkeeping(),
  },
  (t) => [index("images_os_idx").on(t.os), uniqueIndex("images_os_version_key").on(t.os, t.versionKey)],
);

export type ImageRow = typeof images.$inferSelect;
export type NewImageRow = typeof images.$inferInsert;
