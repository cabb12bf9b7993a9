import { and, asc, eq, ne, type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { daemonSessions, replicas } from "../db/schema/index.js";

/**
 * The replica table and the daemon-session table. Heartbeats are stamped and
 * judged with the DATABASE's clock (`now()`), so replicas on hosts whose
 * clocks disagree still agree on who is dead. A session's connected_at and
 * last_seen come from the replica that holds it (when it registered the
 * stream, when the daemon last said something).
 */
export interface ReplicaIdentity {
  id: string;
  /** host:port the other replicas dial. */
  address: string;
  version: string;
  startedAt: Date;
}

export interface LiveReplica extends ReplicaIdentity {
  heartbeatAt: Date;
}

export type SessionKind = "switch" | "bmc";

/** One daemon session as this replica holds it: who, since when, last heard. */
export interface HeldSession {
  kind: SessionKind;
  partition: string;
  daemonId: string;
  connectedAt: Date;
  lastSeen: Date;
}

export interface ListedSession extends HeldSession {
  replica: string;
  replicaAddress: string;
}

/** Postgres takes at most 65,535 parameters per statement; six a row leaves room. */
const STAMP_CHUNK = 1_000;

const olderThan = (timeoutMs: number): SQL => sql`${replicas.heartbeatAt} < now() - make_interval(secs => ${timeoutMs / 1000})`;

export const replicaRepository = {
  /** Inserts the replica, or refreshes its row (a restart under the same id, or a replica that was reaped while paused). */
  async register(db: DbHandle, r: ReplicaIdentity): Promise<void> {
    await db
      .insert(replicas)
      .values({ ...r, heartbeatAt: sql`now()` })
      .onConflictDoUpdate({ target: replicas.id, set: { address: r.address, version: r.version, startedAt: r.startedAt, heartbeatAt: sql`now()` } });
  },

  /** Stamps the heartbeat; false when the row is gone (another replica reaped this one). */
  async heartbeat(db: DbHandle, id: string): Promise<boolean> {
    const rows = await db.update(replicas).set({ heartbeatAt: sql`now()` }).where(eq(replicas.id, id)).returning({ id: replicas.id });
    return rows.length > 0;
  },

  /** Deletes the replica's row and, by cascade, its daemon sessions' rows (clean shutdown). */
  async remove(db: DbHandle, id: string): Promise<void> {
    await db.delete(replicas).where(eq(replicas.id, id));
  },

  /**
   * Deletes the replicas whose heartbeat is older than `timeoutMs` (never
   * `self`), and by cascade their sessions' rows; returns their ids. Rows
   * another reaper is deleting right now are skipped, not waited for, so
   * replicas reaping at once neither block nor deadlock each other.
   */
  async reap(db: DbHandle, timeoutMs: number, self: string): Promise<string[]> {
    const dead = db
      .select({ id: replicas.id })
      .from(replicas)
      .where(and(olderThan(timeoutMs), ne(replicas.id, self)))
      .for("update", { skipLocked: true });
    const rows = await db.delete(replicas).where(sql`${replicas.id} in ${dead}`).returning({ id: replicas.id });
    return rows.map((r) => r.id);
  },

  /** The replicas whose heartbeat is within `timeoutMs`, by id. */
  async listLive(db: DbHandle, timeoutMs: number): Promise<LiveReplica[]> {
    return db
      .select({ id: replicas.id, address: replicas.address, version: replicas.version, startedAt: replicas.startedAt, heartbeatAt: replicas.heartbeatAt })
      .from(replicas)
      .where(sql`not (${olderThan(timeoutMs)})`)
      .orderBy(asc(replicas.id));
  },
};

const key = (s: { kind: string; partition: string; daemonId: string }): string => JSON.stringify([s.kind, s.partition, s.daemonId]);

export const daemonSessionRepository = {
  /**
   * Writes the rows of sessions `replica` holds, in one statement per
   * thousand: a missing row is inserted, a row of the same connection gets
   * its last_seen, and a row of an OLDER connection of the same daemon (it
   * reconnected here from another replica, or was held here before) is
   * taken over. A row of a NEWER connection (the daemon has since reconnected
   * elsewhere) is left alone. Returns the keys (see `sessionKey`) of the
   * sessions whose row is now this replica's; the others were taken over.
   */
  async hold(db: DbHandle, replica: string, sessions: readonly HeldSession[]): Promise<Set<string>> {
    const held = new Set<string>();
    for (let i = 0; i < sessions.length; i += STAMP_CHUNK) {
      const chunk = sessions.slice(i, i + STAMP_CHUNK);
      const rows = await db
        .insert(daemonSessions)
        .values(chunk.map((s) => ({ kind: s.kind, partitionId: s.partition, daemonId: s.daemonId, replicaId: replica, connectedAt: s.connectedAt, lastSeen: s.lastSeen })))
        .onConflictDoUpdate({
          target: [daemonSessions.kind, daemonSessions.partitionId, daemonSessions.daemonId],
          set: { replicaId: sql`excluded.replica_id`, connectedAt: sql`excluded.connected_at`, lastSeen: sql`excluded.last_seen` },
          // Same connection (replica and connected_at equal): a stamp. Older connection: a takeover.
          // Connections of two replicas in the same millisecond are ordered by replica id, so both agree.
          setWhere: sql`(${daemonSessions.connectedAt}, ${daemonSessions.replicaId}) <= (excluded.connected_at, excluded.replica_id)`,
        })
        .returning({ kind: daemonSessions.kind, partition: daemonSessions.partitionId, daemonId: daemonSessions.daemonId });
      for (const r of rows) held.add(key(r));
    }
    return held;
  },

  /**
   * Deletes a session's row if it is still this connection's: after the
   * daemon reconnected (here or to another replica) the row is the new
   * connection's, and the old stream's late close leaves it alone.
   */
  async release(db: DbHandle, replica: string, s: { kind: SessionKind; partition: string; daemonId: string; connectedAt: Date }): Promise<void> {
    await db
      .delete(daemonSessions)
      .where(
        and(
          eq(daemonSessions.kind, s.kind),
          eq(daemonSessions.partitionId, s.partition),
          eq(daemonSessions.daemonId, s.daemonId),
          eq(daemonSessions.replicaId, replica),
          eq(daemonSessions.connectedAt, s.connectedAt),
        ),
      );
  },

  /** Every replica's sessions, filtered; ordered by kind, partition and daemon id (byte order). */
  async list(db: DbHandle, filter: { kind?: SessionKind; partition?: string } = {}): Promise<ListedSession[]> {
    const where = and(filter.kind === undefined ? undefined : eq(daemonSessions.kind, filter.kind), filter.partition === undefined ? undefined : eq(daemonSessions.partitionId, filter.partition));
    return db
      .select({
        kind: daemonSessions.kind,
        partition: daemonSessions.partitionId,
        daemonId: daemonSessions.daemonId,
        replica: daemonSessions.replicaId,
        replicaAddress: replicas.address,
        connectedAt: daemonSessions.connectedAt,
        lastSeen: daemonSessions.lastSeen,
      })
      .from(daemonSessions)
      .innerJoin(replicas, eq(replicas.id, daemonSessions.replicaId))
      .where(where)
      .orderBy(sql`${daemonSessions.kind} collate "C"`, sql`${daemonSessions.partitionId} collate "C"`, sql`${daemonSessions.daemonId} collate "C"`);
  },
};

/** The key `hold` returns for a session. */
export const sessionKey = key;
