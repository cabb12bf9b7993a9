import { and, asc, eq } from "drizzle-orm";
import type { Db } from "../db/database.js";
import { bmcCommands, machines, type StoredBmc } from "../db/schema/index.js";

/** A pending command with the BMC it goes to, as the partition's metal-bmc receives it. */
export interface PendingBmcCommand {
  id: string;
  machineId: string;
  command: string;
  deadline: Date;
  bmc: StoredBmc | null;
}

/** BMC commands as metal-bmc's session sees them. */
export const bmcCommandRepository = {
  /** The partition's pending commands, oldest first (per machine they must run in this order). */
  async pendingOfPartition(db: Db<any>, partition: string, limit = 1000): Promise<PendingBmcCommand[]> {
    return db
      .select({ id: bmcCommands.id, machineId: bmcCommands.machineId, command: bmcCommands.command, deadline: bmcCommands.deadline, bmc: machines.bmc })
      .from(bmcCommands)
      .innerJoin(machines, eq(machines.id, bmcCommands.machineId))
      .where(and(eq(bmcCommands.partitionId, partition), eq(bmcCommands.status, "pending")))
      .orderBy(asc(bmcCommands.id))
      .limit(limit);
  },

  /**
   * Records metal-bmc's result, but only while the command is still pending:
   * a result arriving after the deadline job gave up must not turn a timed-out
   * command into a done one, and a result sent again after a reconnect
   * changes nothing. The partition is part of the match, so an agent cannot
   * settle another partition's commands. False when nothing was changed.
   */
  async complete(db: Db<any>, partition: string, id: string, ok: boolean, result: string, now = new Date()): Promise<boolean> {
    const rows = await db
      .update(bmcCommands)
      .set({ status: ok ? "done" : "failed", result, updatedAt: now })
      .where(and(eq(bmcCommands.id, id), eq(bmcCommands.partitionId, partition), eq(bmcCommands.status, "pending")))
      .returning({ id: bmcCommands.id });
    return rows.length > 0;
  },
};
