import { eq, gt, inArray } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { changeLog, type MachineEventsRow, type MachineRow, machineEvents, machines } from "../db/schema/index.js";

export interface WatchedMachine {
  machine: MachineRow;
  events: MachineEventsRow | undefined;
}

/**
 * Reads for the Watch hub. It loads the current rows of the machines a batch
 * of changes touched once for every watcher of the replica, and decides per
 * watcher what it may see (the same project and partition rules as the
 * tenant and admin List): this query is not scoped, its caller is.
 */
export const machineWatchRepository = {
  /** The machines with their events, by id; a machine that is gone is missing from the map. One query. */
  async load(db: DbHandle, ids: readonly string[]): Promise<Map<string, WatchedMachine>> {
    const found = new Map<string, WatchedMachine>();
    if (ids.length === 0) return found;
    const rows = await db
      .select()
      .from(machines)
      .leftJoin(machineEvents, eq(machineEvents.machineId, machines.id))
      .where(inArray(machines.id, [...ids]));
    for (const r of rows) found.set(r.machines.id, { machine: r.machines, events: r.machine_events ?? undefined });
    return found;
  },

  /**
   * Whether the change log holds rows after `tx`, settled or not: after a
   * read that found everything settled, a yes means a change committed
   * behind a transaction that still runs (its rows become readable when
   * that one ends). One index probe.
   */
  async pendingAfter(db: DbHandle, tx: number): Promise<boolean> {
    const rows = await db.select({ tx: changeLog.tx }).from(changeLog).where(gt(changeLog.tx, tx)).limit(1);
    return rows.length > 0;
  },
};
