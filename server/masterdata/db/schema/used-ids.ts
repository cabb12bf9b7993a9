import { pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { instant } from "./columns.js";

/**
 * Every tenant and project id ever created, kept after the entity is deleted:
 * roles, tokens and resources elsewhere name tenants and projects by id, so an
 * id is never handed out twice. The primary key makes that hold by construction
 * (two concurrent creates of one id: one insert waits and then fails).
 */
export const usedIds = pgTable(
  "used_ids",
  {
    /** The entity's kind as recorded in the history ("Tenant", "Project"). */
    kind: text("kind").notNull(),
    id: text("id").notNull(),
    createdAt: instant("created_at").notNull().defaultNow(),
    /** When the entity was deleted; the row stays. */
    deletedAt: instant("deleted_at"),
  },
  (t) => [primaryKey({ columns: [t.kind, t.id], name: "used_ids_pkey" })],
);
