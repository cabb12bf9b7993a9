import { and, asc, gt, lt, or, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type ChangeRow, changeCursors, changeLog } from "../db/schema/index.js";

/**
 * The change log (written by triggers, see db/schema/changes.ts). Readers go
 * by transaction id and see only transactions older than every one still
 * running, so whatever they have read stays complete: a transaction that
 * started earlier and commits later cannot appear behind their cursor.
 */
export const changeLogRepository = {
  /**
   * Up to `limit` changes of transactions after `afterTx` that are settled
   * (no older transaction still runs), in commit-safe order (by transaction,
   * then by revision). A transaction's changes are returned whole: the
   * batch may hold more than `limit` rows to finish the last transaction.
   */
  async readAfter(db: DbHandle, afterTx: number, limit: number): Promise<ChangeRow[]> {
    const settled = sql`${changeLog.tx} < pg_snapshot_xmin(pg_current_snapshot())::text::bigint`;
    const rows = await db
      .select()
      .from(changeLog)
      .where(and(gt(changeLog.tx, afterTx), settled))
      .orderBy(asc(changeLog.tx), asc(changeLog.revision))
      .limit(limit);
    if (rows.length < limit) return rows;
    const lastTx = rows[rows.length - 1]!.tx;
    const rest = await db
      .select()
      .from(changeLog)
      .where(and(sql`${changeLog.tx} = ${lastTx}`, gt(changeLog.revision, rows[rows.length - 1]!.revision)))
      .orderBy(asc(changeLog.revision));
    return [...rows, ...rest];
  },

  /** The newest settled position: a snapshot read now is complete up to it. Read it BEFORE the snapshot's rows. */
  async settledTx(db: DbHandle): Promise<number> {
    const res = (await db.execute(sql`select (pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1)::text as tx`)) as unknown as { rows: { tx: string }[] };
    return Number(res.rows[0]!.tx);
  },

  /**
   * Deletes changes older than `before`, and records how far: a reader behind
   * that must start over. Returns the rows deleted. Changes the event feed
   * has not published yet are kept (a broker outage must not lose them) as
   * long as they are younger than `feedBacklogBefore` and the feed's cursor
   * moved since then (a feed switched off does not keep the log forever).
   */
  async prune(db: DbHandle, before: Date, feedBacklogBefore = new Date(before.getTime() - FEED_BACKLOG_MS)): Promise<number> {
    return db.transaction(async (tx) => {
      const feed = await tx
        .select({ tx: changeCursors.tx })
        .from(changeCursors)
        .where(and(sql`${changeCursors.name} = ${EVENT_FEED}`, gt(changeCursors.updatedAt, feedBacklogBefore)));
      const published = feed[0] === undefined ? sql`true` : sql`${changeLog.tx} <= ${feed[0].tx}`;
      const deleted = await tx
        .delete(changeLog)
        .where(or(lt(changeLog.at, feedBacklogBefore), and(lt(changeLog.at, before), published)))
        .returning({ tx: changeLog.tx });
      if (deleted.length === 0) return 0;
      const upTo = Math.max(...deleted.map((d) => d.tx));
      await tx
        .insert(changeCursors)
        .values({ name: PRUNED, tx: upTo })
        .onConflictDoUpdate({ target: changeCursors.name, set: { tx: sql`greatest(${changeCursors.tx}, ${upTo})`, updatedAt: sql`now()` } });
      return deleted.length;
    });
  },

  /** Transactions at or below this were pruned (0: nothing was). */
  async prunedTx(db: DbHandle): Promise<number> {
    return (await cursor(db, PRUNED)) ?? 0;
  },

  /** A named reader's durable position (the event feed's), undefined before its first save. */
  cursor: (db: DbHandle, name: string): Promise<number | undefined> => cursor(db, name),

  async saveCursor(db: DbHandle, name: string, tx: number): Promise<void> {
    await db
      .insert(changeCursors)
      .values({ name, tx })
      .onConflictDoUpdate({ target: changeCursors.name, set: { tx, updatedAt: sql`now()` } });
  },
};

const PRUNED = "pruned";
/** The event feed's cursor (server/feed). */
const EVENT_FEED = "event-feed";
/** How long changes the event feed has not published are kept: a week-long broker outage loses nothing. */
const FEED_BACKLOG_MS = 7 * 24 * 3600_000;

async function cursor(db: DbHandle, name: string): Promise<number | undefined> {
  const [row] = await db.select({ tx: changeCursors.tx }).from(changeCursors).where(sql`${changeCursors.name} = ${name}`);
  return row?.tx;
}
