import { sql } from "drizzle-orm";
import { bigint, index, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/**
 * Every change a client can watch, written by triggers (migration 0007) in
 * the transaction that made it, so no code path can forget one: machines
 * (created, updated, allocated, freed, deleted; a lease renewal alone is
 * not a change), their provisioning events, and switches (sync reports).
 *
 * Readers (the Watch hub, the event feed) go by `tx`, the writing
 * transaction's id: rows are read only below the oldest transaction still
 * running (pg_snapshot_xmin), so a transaction that commits late can never
 * slip in behind a reader's cursor, as it could with `revision` alone.
 */
export const changeLog = pgTable(
  "change_log",
  {
    revision: bigint("revision", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    /** pg_current_xact_id() of the writing transaction; the readers' cursor. */
    tx: bigint("tx", { mode: "number" }).notNull().default(sql`(pg_current_xact_id()::text::bigint)`),
    entity: text("entity").$type<"machine" | "switch">().notNull(),
    entityId: text("entity_id").notNull(),
    partitionId: text("partition_id"),
    /** The machine's project after the change (who may see it now). */
    project: text("project"),
    /** The machine's project before the change (a freed machine's former owner sees it leave). */
    previousProject: text("previous_project"),
    kind: text("kind").$type<ChangeKind>().notNull(),
    /** For "event": `{ "events": [...] }`, the events the change added (newest first); for "synced": the switch's last sync and last error. */
    payload: jsonb("payload"),
    at: timestamp("at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [index("change_log_tx_idx").on(t.tx, t.revision), index("change_log_at_idx").on(t.at)],
);

export type ChangeKind = "created" | "updated" | "allocated" | "freed" | "deleted" | "event" | "synced";

/**
 * Named positions in the change log: the event feed's durable cursor
 * ("event-feed"), and how far the log has been pruned ("pruned"), below
 * which a Watch cannot resume and starts over with a snapshot.
 */
export const changeCursors = pgTable("change_cursors", {
  name: text("name").primaryKey(),
  tx: bigint("tx", { mode: "number" }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

export type ChangeRow = typeof changeLog.$inferSelect;
