import { eq, getTableColumns, sql } from "drizzle-orm";
import type { Db } from "../db/database.js";
import { machineConnections, machines, switches, type NewSwitchRow, type StoredHardware, type SwitchRow } from "../db/schema/index.js";
import type { Connection } from "../domain/switch-wiring.js";

export const switchRepository = {
  /** Creates or updates a switch; `created` tells which. */
  async upsert(tx: Db<any>, row: NewSwitchRow): Promise<{ row: SwitchRow; created: boolean }> {
    const { id, ...rest } = row;
    const [saved] = await tx
      .insert(switches)
      .values(row)
      .onConflictDoUpdate({ target: switches.id, set: { ...rest, version: sql`${switches.version} + 1`, updatedAt: sql`now()` } })
      // xmax is 0 only for a row this statement inserted (not one it updated).
      .returning({ ...getTableColumns(switches), inserted: sql<boolean>`(xmax = 0)` });
    const { inserted, ...switchRow } = saved!;
    return { row: switchRow as SwitchRow, created: inserted };
  },

  ofPartition: (db: Db<any>, partition: string): Promise<SwitchRow[]> => db.select().from(switches).where(eq(switches.partitionId, partition)),

  /** Replaces the machine's cabling; a port re-cabled to this machine is taken over. */
  async replaceConnections(tx: Db<any>, machineId: string, connections: Connection[]): Promise<void> {
    await tx.delete(machineConnections).where(eq(machineConnections.machineId, machineId));
    if (connections.length === 0) return;
    await tx
      .insert(machineConnections)
      .values(connections.map((c) => ({ switchId: c.switchId, switchPort: c.switchPort, machineId, machineNic: c.machineNic })))
      .onConflictDoUpdate({
        target: [machineConnections.switchId, machineConnections.switchPort],
        set: { machineId: sql`excluded.machine_id`, machineNic: sql`excluded.machine_nic` },
      });
  },

  async connectionsOf(db: Db<any>, machineId: string) {
    return db.select().from(machineConnections).where(eq(machineConnections.machineId, machineId)).orderBy(machineConnections.switchId);
  },
};

export const machineRegistrationRepository = {
  async save(
    tx: Db<any>,
    id: string,
    fields: { sizeId: string; rackId: string; hardware: StoredHardware; bios: { vendor: string; version: string; date: string } },
  ): Promise<void> {
    await tx
      .update(machines)
      .set({ ...fields, version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(eq(machines.id, id));
  },
};
