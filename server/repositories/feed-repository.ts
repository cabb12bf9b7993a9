import { eq, inArray, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type MachineEventsRow, type MachineRow, machineEvents, machines, type SwitchRow, switches } from "../db/schema/index.js";

/** Key of the event feed's advisory lock: one replica at a time publishes (see server/feed/publisher.ts). */
const EVENT_FEED_LOCK = 7111;

/** What the event feed reads besides the change log: the current rows of a batch's machines and switches. */
export const feedRepository = {
  /** Takes the feed's lock until the transaction ends; false when another replica holds it now. */
  async tryLock(tx: DbHandle): Promise<boolean> {
    const res = (await tx.execute(sql`select pg_try_advisory_xact_lock(${EVENT_FEED_LOCK}) as ok`)) as unknown as { rows: { ok: boolean }[] };
    return res.rows[0]?.ok === true;
  },

  /** The machines (with their event containers) of these ids that still exist, in one query. */
  async machines(db: DbHandle, ids: readonly string[]): Promise<Map<string, { machine: MachineRow; events: MachineEventsRow | undefined }>> {
    if (ids.length === 0) return new Map();
    const rows = await db
      .select()
      .from(machines)
      .leftJoin(machineEvents, eq(machineEvents.machineId, machines.id))
      .where(inArray(machines.id, [...ids]));
    return new Map(rows.map((r) => [r.machines.id, { machine: r.machines, events: r.machine_events ?? undefined }]));
  },

  /** The switches of these ids that still exist, in one query. */
  async switches(db: DbHandle, ids: readonly string[]): Promise<Map<string, SwitchRow>> {
    if (ids.length === 0) return new Map();
    const rows = await db
      .select()
      .from(switches)
      .where(inArray(switches.id, [...ids]));
    return new Map(rows.map((r) => [r.id, r]));
  },
};
