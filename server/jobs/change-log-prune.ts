import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import { changeLogRepository as changes } from "../repositories/change-log-repository.js";
import { machineRepository as machines } from "../repositories/machine-repository.js";

const CHANGE_LOG_PRUNE_LOCK = 7108;

/**
 * How long the change log keeps a change: a Watch client that reconnects
 * within this resumes from its revision; one away longer gets a reset and a
 * new snapshot. An hour covers a laptop's lid closed over lunch and keeps the
 * table small (every machine event is a row).
 */
export const CHANGE_LOG_RETENTION_MS = 60 * 60_000;

/** How often the prune runs (every replica's timer; one replica at a time does the work). */
export const CHANGE_LOG_PRUNE_INTERVAL_MS = 5 * 60_000;

/**
 * Deletes change-log rows older than the retention and records how far (so a
 * Watch resuming from before that starts over). One replica at a time: the
 * others find the advisory lock taken and skip. Returns the rows deleted, or
 * undefined when another replica runs the job.
 */
export async function runChangeLogPruneJob(db: DbHandle, now = new Date(), retentionMs = CHANGE_LOG_RETENTION_MS): Promise<number | undefined> {
  return inTransaction(db, async (tx) => {
    if (!(await machines.tryJobLock(tx, CHANGE_LOG_PRUNE_LOCK))) return undefined;
    return changes.prune(tx, new Date(now.getTime() - retentionMs));
  });
}
