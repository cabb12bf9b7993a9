import { sql } from "drizzle-orm";
import { inTransaction } from "../../server/db/database.js";
import type { DbHandle } from "../../server/db/handle.js";
import { eventually } from "./eventually.js";

/**
 * Interleaving transactions on real PostgreSQL (separate connections) for
 * the race tests: one holds its locks open while another is shown to wait.
 */

/** Resolves once some statement of this database waits for a lock held by another transaction. */
export async function someoneWaitsForALock(db: DbHandle): Promise<void> {
  await eventually("some statement to wait for a lock", async () => {
    const res = (await db.execute(sql`select 1 from pg_locks l join pg_stat_activity a on a.pid = l.pid where not l.granted and a.datname = current_database()`)) as unknown as { rows: unknown[] };
    return res.rows.length > 0;
  });
}

/** What `done` of a transaction ended by `rollback` rejects with. */
export class RolledBack extends Error {}

/**
 * Runs `body` in a transaction that stays open until the returned `commit`
 * or `rollback` is called (`done` then rejects with RolledBack).
 */
export function openTransaction(db: DbHandle, body: (tx: DbHandle) => Promise<void>) {
  let end!: (commit: boolean) => void;
  const gate = new Promise<boolean>((r) => (end = r));
  let ready!: () => void;
  const started = new Promise<void>((r) => (ready = r));
  const done = inTransaction(db, async (tx) => {
    await body(tx);
    ready();
    if (!(await gate)) throw new RolledBack("rolled back by the test");
  });
  return { started, commit: () => end(true), rollback: () => end(false), done };
}
