import { and, asc, eq, ne, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { DbHandle } from "../db/handle.js";
import { bmcCommands, machines, type StoredBmc } from "../db/schema/index.js";

/** A pending command with the BMC it goes to, as the partition's metal-bmc receives it. */
export interface PendingBmcCommand {
  id: string;
  machineId: string;
  command: string;
  deadline: Date;
  bmc: StoredBmc | null;
  /** Other machines of the partition that report the same BMC address, ordered by id; empty when the address is the machine's own. */
  sharedWith: string[];
}

/** Another machine record of the same partition with the same BMC address (machines `m` vs `other`). */
const other = alias(machines, "other_machine");
const sameBmcAddress = and(ne(other.id, machines.id), eq(other.partitionId, machines.partitionId), sql`${other.bmc}->>'address' = ${machines.bmc}->>'address'`, sql`${machines.bmc}->>'address' <> ''`);
/** The ids of those other machines, ordered, as a text array (empty when there are none). */
const sharedWithColumn = sql<string[]>`coalesce(array_agg(${other.id} order by ${other.id}) filter (where ${other.id} is not null), '{}')`;

/** BMC commands as metal-bmc's session sees them. */
export const bmcCommandRepository = {
  /**
   * The partition's pending commands, oldest first (per machine they must run
   * in this order), each with the other machines that report its BMC address.
   * One join over the machines, so the cost does not grow with pending commands times machines.
   */
  async pendingOfPartition(db: DbHandle, partition: string, limit = 1000): Promise<PendingBmcCommand[]> {
    return db
      .select({
        id: bmcCommands.id,
        machineId: bmcCommands.machineId,
        command: bmcCommands.command,
        deadline: bmcCommands.deadline,
        bmc: machines.bmc,
        sharedWith: sharedWithColumn,
      })
      .from(bmcCommands)
      .innerJoin(machines, eq(machines.id, bmcCommands.machineId))
      .leftJoin(other, sameBmcAddress)
      .where(and(eq(bmcCommands.partitionId, partition), eq(bmcCommands.status, "pending")))
      .groupBy(bmcCommands.id, machines.id)
      .orderBy(asc(bmcCommands.id))
      .limit(limit);
  },

  /**
   * The other machines of the machine's partition that report the same BMC
   * address, ordered by id; empty when there are none, the machine has no BMC
   * address, or it does not exist.
   */
  async machinesSharingBmcOf(db: DbHandle, machineId: string): Promise<{ address: string; others: string[] }> {
    const rows = await db
      .select({ address: sql<string>`${machines.bmc}->>'address'`, others: sharedWithColumn })
      .from(machines)
      .leftJoin(other, sameBmcAddress)
      .where(eq(machines.id, machineId))
      .groupBy(machines.id);
    return { address: rows[0]?.address ?? "", others: rows[0]?.others ?? [] };
  },

  /**
   * Records metal-bmc's result, but only while the command is still pending:
   * a result arriving after the deadline job gave up must not turn a timed-out
   * command into a done one, and a result sent again after a reconnect
   * changes nothing. The partition is part of the match, so an agent cannot
   * settle another partition's commands. False when nothing was changed.
   */
  async complete(db: DbHandle, partition: string, id: string, ok: boolean, result: string, now = new Date()): Promise<boolean> {
    const rows = await db
      .update(bmcCommands)
      .set({ status: ok ? "done" : "failed", result, updatedAt: now })
      .where(and(eq(bmcCommands.id, id), eq(bmcCommands.partitionId, partition), eq(bmcCommands.status, "pending")))
      .returning({ id: bmcCommands.id });
    return rows.length > 0;
  },
};
