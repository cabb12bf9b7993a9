import { index, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";

/**
 * The control-plane replicas that run now. Each stamps its heartbeat; a
 * replica whose heartbeat stopped is reaped by the others, and with it the
 * daemon sessions it held (cascade).
 */
export const replicas = pgTable("replicas", {
  id: text("id").primaryKey(),
  /** host:port where the other replicas reach this one's API listener (internal streams such as console relays). */
  address: text("address").notNull(),
  version: text("version").notNull().default(""),
  startedAt: timestamp("started_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  heartbeatAt: timestamp("heartbeat_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

/**
 * One row per open edge-daemon session (metal-core, metal-bmc), whichever
 * replica holds it: ConnectionService.List reads these, and a replica finds
 * here which replica holds a partition's metal-bmc for a console.
 */
export const daemonSessions = pgTable(
  "daemon_sessions",
  {
    kind: text("kind").$type<"switch" | "bmc">().notNull(),
    partitionId: text("partition_id").notNull(),
    /** The switch id, or the metal-bmc's own name (unique only within its partition). */
    daemonId: text("daemon_id").notNull(),
    replicaId: text("replica_id")
      .notNull()
      .references(() => replicas.id, { onDelete: "cascade" }),
    connectedAt: timestamp("connected_at", { withTimezone: true, mode: "date" }).notNull(),
    lastSeen: timestamp("last_seen", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.partitionId, t.daemonId] }), index("daemon_sessions_replica_idx").on(t.replicaId)],
);

export type ReplicaRow = typeof replicas.$inferSelect;
export type DaemonSessionRow = typeof daemonSessions.$inferSelect;
