import { bigserial, index, jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { instant } from "./columns.js";

export type HistoryOp = "create" | "update" | "delete";

/**
 * Every create, update and delete of every entity, written in the same
 * transaction as the change: the entity's full row as JSON at time `at`.
 */
export const history = pgTable(
  "history",
  {
    /** Breaks ties between changes within the same millisecond. */
    seq: bigserial("seq", { mode: "number" }).primaryKey(),
    /** Tenant, Project, TenantMember or ProjectMember. */
    kind: text("kind").notNull(),
    entityId: text("entity_id").notNull(),
    op: text("op").$type<HistoryOp>().notNull(),
    at: instant("at").notNull().defaultNow(),
    state: jsonb("state").$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index("history_entity_at_idx").on(t.kind, t.entityId, t.at)],
);

export type HistoryRow = typeof history.$inferSelect;
