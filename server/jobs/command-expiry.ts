import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
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
export async function runCommandExpiryJob(db: DbHandle, now = new Date()): Promise<string[] | undefined> {
  return inTransaction(db, async (tx) => {
    if (!(await machines.tryJobLock(tx, COMMAND_EXPIRY_LOCK))) return undefined;
    return (await commands.expire(tx, now, TIMED_OUT_RESULT)).map((c) => c.id);
  });
}
