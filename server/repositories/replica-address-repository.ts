import { and, ne, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { replicas } from "../db/schema/index.js";

/**
 * The OTHER replicas whose heartbeat is within `timeoutMs` (the database's
 * clock), with the address their API listener is reached at: where a browser
 * console's Input is passed on to the replica holding the console.
 */
export async function liveReplicaAddresses(db: DbHandle, self: string, timeoutMs: number): Promise<{ id: string; address: string }[]> {
  return db
    .select({ id: replicas.id, address: replicas.address })
    .from(replicas)
    .where(and(ne(replicas.id, self), sql`${replicas.heartbeatAt} >= now() - make_interval(secs => ${timeoutMs / 1000})`));
}
