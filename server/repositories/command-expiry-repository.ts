import { and, eq, lt } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { bmcCommands } from "../db/schema/index.js";

/** BMC commands past their deadline. */
export const commandExpiryRepository = {
  /**
   * Marks pending commands whose deadline lies before `now` as timed out.
   * The status is re-checked on each row as it is updated, so a result that
   * metal-bmc reports at the same moment is never overwritten.
   */
  async expire(tx: DbHandle, now: Date, result: string): Promise<{ id: string; machineId: string; partitionId: string; command: string }[]> {
    return tx
      .update(bmcCommands)
      .set({ status: "timed_out", result, updatedAt: now })
      .where(and(eq(bmcCommands.status, "pending"), lt(bmcCommands.deadline, now)))
      .returning({ id: bmcCommands.id, machineId: bmcCommands.machineId, partitionId: bmcCommands.partitionId, command: bmcCommands.command });
  },
};
