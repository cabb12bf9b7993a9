import { and, ne, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { replicas } from "../db/schema/index.js";

/**
 * The ids of the OTHER replicas whose heartbeat is within `timeoutMs`, judged
 * by the database's clock (replica hosts' clocks may disagree). A revocation
 * waits for exactly these to confirm it dropped the tokens.
 */
export async function liveReplicaIds(db: DbHandle, self: string, timeoutMs: number): Promise<string[]> {
  const rows = await db
    .select({ id: replicas.id })
    .from(replicas)
    .where(and(ne(replicas.id, self), sql`${replicas.heartbeatAt} >= now() - make_interval(secs => ${timeoutMs / 1000})`));
  return rows.map((r) => r.id);
}
