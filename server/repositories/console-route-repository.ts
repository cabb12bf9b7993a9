import { and, desc, eq, type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { daemonSessions, replicas } from "../db/schema/index.js";

/** A replica that holds a metal-bmc session of a partition, and where to reach it. */
export interface ConsoleRoute {
  replicaId: string;
  /** host:port of the replica's API listener. */
  address: string;
  /** The metal-bmc whose session the replica holds. */
  daemonId: string;
  connectedAt: Date;
}

/** Judged with the database's clock, as the replicas stamp their heartbeats with it. */
const fresh = (withinMs: number): SQL => sql`${replicas.heartbeatAt} >= now() - make_interval(secs => ${withinMs / 1000})`;

/** Where a console of a partition can be opened: the replicas whose metal-bmc sessions reach its machines. */
export const consoleRouteRepository = {
  /**
   * The live replicas (heartbeat within `freshWithinMs`) holding a metal-bmc
   * session of `partition`: `prefer` first when it holds one (no hop at all),
   * then the newest session first (a metal-bmc that just reconnected left an
   * older row behind on a replica that may be dying).
   */
  async routesOf(db: DbHandle, partition: string, freshWithinMs: number, prefer?: string): Promise<ConsoleRoute[]> {
    const preferred = prefer === undefined ? sql`0` : sql`case when ${daemonSessions.replicaId} = ${prefer} then 0 else 1 end`;
    return db
      .select({ replicaId: daemonSessions.replicaId, address: replicas.address, daemonId: daemonSessions.daemonId, connectedAt: daemonSessions.connectedAt })
      .from(daemonSessions)
      .innerJoin(replicas, eq(replicas.id, daemonSessions.replicaId))
      .where(and(eq(daemonSessions.kind, "bmc"), eq(daemonSessions.partitionId, partition), fresh(freshWithinMs)))
      .orderBy(preferred, desc(daemonSessions.connectedAt))
      .limit(16);
  },
};
