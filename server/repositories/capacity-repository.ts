import { and, arrayContains, asc, eq, inArray, or, type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type MachineEventsRow, machineEvents, machines, partitions, type StoredBmc, type StoredEvent, sizeReservations, sizes } from "../db/schema/index.js";
import { UNKNOWN_SIZE } from "../domain/size.js";
import { notFound } from "../errors.js";
import { candidateCondition } from "./machine-repository.js";

export interface CapacityFilter {
  partition?: string;
  size?: string;
}

/** One machine as the capacity report needs it; `newest` holds at most the newest event. */
export interface CapacityMachineRow {
  id: string;
  partition: string | null;
  size: string | null;
  allocated: boolean;
  project: string | null;
  bmc: StoredBmc | null;
  bmcShared: boolean;
  hasEvents: boolean;
  liveliness: MachineEventsRow["liveliness"] | null;
  newest: StoredEvent[] | null;
  lastEventTime: Date | null;
  lastErrorEvent: StoredEvent | null;
  crashLoop: boolean | null;
  failedMachineReclaim: boolean | null;
  /** Whether the machine meets the allocation candidate rule right now. */
  candidate: boolean;
}

export interface CapacitySnapshot {
  partitions: string[];
  machines: CapacityMachineRow[];
  reservations: { project: string; size: string; partitions: string[]; amount: number }[];
}

/** What the capacity report counts, read in one snapshot so the numbers agree with each other. */
export const capacityRepository = {
  async read(db: DbHandle, filter: CapacityFilter): Promise<CapacitySnapshot> {
    return db.transaction(
      async (txh) => {
        const tx = txh as unknown as DbHandle;
        const partitionIds = (
          await tx
            .select({ id: partitions.id })
            .from(partitions)
            .where(filter.partition !== undefined ? eq(partitions.id, filter.partition) : undefined)
            .orderBy(asc(partitions.id))
        ).map((r) => r.id);
        if (filter.partition !== undefined && partitionIds.length === 0) throw notFound("partition", filter.partition);
        if (filter.size !== undefined && filter.size !== UNKNOWN_SIZE) {
          const [found] = await tx.select({ id: sizes.id }).from(sizes).where(eq(sizes.id, filter.size));
          if (!found) throw notFound("size", filter.size);
        }
        if (partitionIds.length === 0) return { partitions: [], machines: [], reservations: [] };

        const where: SQL[] = [inArray(machines.partitionId, partitionIds)];
        if (filter.size === UNKNOWN_SIZE) where.push(sql`(${machines.sizeId} is null or ${machines.sizeId} = ${UNKNOWN_SIZE})`);
        else if (filter.size !== undefined) where.push(eq(machines.sizeId, filter.size));
        const rows = await tx
          .select({
            id: machines.id,
            partition: machines.partitionId,
            size: machines.sizeId,
            allocated: sql<boolean>`${machines.allocation} is not null`,
            project: machines.project,
            bmc: machines.bmc,
            bmcShared: sql<boolean>`coalesce(${machines.bmc}->>'address', '') <> '' and exists (
              select 1 from ${machines} as other
              where other.id <> ${machines.id} and other.bmc->>'address' = ${machines.bmc}->>'address')`,
            hasEvents: sql<boolean>`${machineEvents.machineId} is not null`,
            liveliness: machineEvents.liveliness,
            // Only the newest event matters to the counts and the issue rules; the history stays in the database.
            newest: sql<StoredEvent[] | null>`case when jsonb_array_length(${machineEvents.events}) > 0 then jsonb_build_array(${machineEvents.events}->0) else '[]'::jsonb end`,
            lastEventTime: machineEvents.lastEventTime,
            lastErrorEvent: machineEvents.lastErrorEvent,
            crashLoop: machineEvents.crashLoop,
            failedMachineReclaim: machineEvents.failedMachineReclaim,
          })
          .from(machines)
          .leftJoin(machineEvents, eq(machineEvents.machineId, machines.id))
          .where(and(...where));

        // The allocation candidate rule, evaluated by the same condition allocation locks candidates with.
        const pairs = new Map<string, [string, string]>();
        for (const r of rows) if (r.partition && r.size && r.size !== UNKNOWN_SIZE) pairs.set(`${r.partition}\u0000${r.size}`, [r.partition, r.size]);
        const candidates = new Set<string>();
        if (pairs.size > 0) {
          const found = await tx
            .select({ id: machines.id })
            .from(machines)
            .innerJoin(machineEvents, eq(machineEvents.machineId, machines.id))
            .where(or(...[...pairs.values()].map(([p, s]) => candidateCondition(p, s))));
          for (const f of found) candidates.add(f.id);
        }

        const reservationWhere: SQL[] = [];
        if (filter.size !== undefined) reservationWhere.push(eq(sizeReservations.sizeId, filter.size));
        if (filter.partition !== undefined) reservationWhere.push(arrayContains(sizeReservations.partitionIds, [filter.partition]));
        const reserved = await tx
          .select({ project: sizeReservations.project, size: sizeReservations.sizeId, partitions: sizeReservations.partitionIds, amount: sizeReservations.amount })
          .from(sizeReservations)
          .where(and(...reservationWhere));

        return {
          partitions: partitionIds,
          machines: rows.map((r) => ({ ...r, candidate: candidates.has(r.id) })),
          reservations: reserved,
        };
      },
      { isolationLevel: "repeatable read", accessMode: "read only" },
    );
  },
};
