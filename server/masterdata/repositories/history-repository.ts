import { and, desc, eq, lte } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import { type HistoryOp, type HistoryRow, history } from "../db/schema/index.js";
import { nowMs } from "./clock.js";

/**
 * The change log of all entities. Rows are only ever appended, each in the
 * transaction of the change it records.
 */
export const historyRepository = {
  /** Appends one change; `at` defaults to the database clock. */
  async record(tx: DbHandle, kind: string, op: HistoryOp, row: { id: string }, at?: Date): Promise<void> {
    await tx.insert(history).values({ kind, entityId: row.id, op, state: row as unknown as Record<string, unknown>, at: at ?? nowMs() });
  },

  /**
   * The last change of the entity made at or before `at` (undefined: the last
   * one of all), or undefined if it had none by then. Changes of one entity are
   * appended under its row lock, so their sequence numbers are in the order
   * they happened.
   */
  async latestAt(db: DbHandle, kind: string, id: string, at: Date | undefined): Promise<HistoryRow | undefined> {
    const rows = await db
      .select()
      .from(history)
      .where(and(eq(history.kind, kind), eq(history.entityId, id), at ? lte(history.at, at) : undefined))
      .orderBy(desc(history.seq))
      .limit(1);
    return rows[0];
  },
};
