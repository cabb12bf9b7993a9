import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import { type BusinessEvents, NO_BUSINESS_EVENTS } from "../metrics/events.js";
import { commandExpiryRepository as commands } from "../repositories/command-expiry-repository.js";
import { machineRepository as machines } from "../repositories/machine-repository.js";

export const COMMAND_EXPIRY_LOCK = 7106;

export const TIMED_OUT_RESULT = "timed out: metal-bmc did not report a result before the deadline";

/**
 * Gives up on BMC commands that metal-bmc did not carry out by their
 * deadline: they leave the pending queue metal-bmc is served from, and
 * whoever looks at them sees why they never ran. One replica at a time: the
 * others find the advisory lock taken and skip. Returns the expired command
 * ids, or undefined when another replica runs the job.
 */
export async function runCommandExpiryJob(db: DbHandle, now = new Date(), events: BusinessEvents = NO_BUSINESS_EVENTS): Promise<string[] | undefined> {
  const expired = await inTransaction(db, async (tx) => {
    if (!(await machines.tryJobLock(tx, COMMAND_EXPIRY_LOCK))) return undefined;
    return commands.expire(tx, now, TIMED_OUT_RESULT);
  });
  if (!expired) return undefined;
  // Counted after the commit: a rolled back expiry expired nothing.
  const byPartition = new Map<string, number>();
  for (const c of expired) byPartition.set(c.partitionId, (byPartition.get(c.partitionId) ?? 0) + 1);
  for (const [partition, n] of byPartition) events.bmcCommandsSettled(partition, "timed_out", n);
  return expired.map((c) => c.id);
}
