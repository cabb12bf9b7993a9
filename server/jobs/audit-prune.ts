import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import { auditRepository as audit } from "../repositories/audit-repository.js";
import { machineRepository as machines } from "../repositories/machine-repository.js";

const AUDIT_PRUNE_LOCK = 7109;

/** How often the prune runs (every replica's timer; one replica at a time does the work, as the change log's). */
export const AUDIT_PRUNE_INTERVAL_MS = 60 * 60_000;

/**
 * Deletes audit entries older than the retention (METAL_AUDIT_RETENTION).
 * One replica at a time: the others find the advisory lock taken and skip.
 * Returns the entries deleted, or undefined when another replica runs the job.
 */
export async function runAuditPruneJob(db: DbHandle, retentionMs: number, now = new Date()): Promise<number | undefined> {
  return inTransaction(db, async (tx) => {
    if (!(await machines.tryJobLock(tx, AUDIT_PRUNE_LOCK))) return undefined;
    return audit.prune(tx, new Date(now.getTime() - retentionMs));
  });
}
