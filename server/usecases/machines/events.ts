import { containerFromRow, rowFromContainer } from "../../convert/machine.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { applyEvent, type EventType, emptyContainer } from "../../domain/provisioning.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { referenceHolds } from "../../repositories/usage-repository.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface IncomingEvent {
  machineId: string;
  /** Undefined when the sender's type is not one we know. */
  type: EventType | undefined;
  rawType: number;
  message: string;
}

/**
 * Records a batch of events in one transaction: unknown machines get a bare
 * record in the sender's partition (a claim of nothing: the machine's own
 * Register elsewhere takes it over, see registrationMayTakeOver), every container is locked, the events are applied in order with the
 * server's receive time, and each container is written once. Entries that
 * cannot be processed are listed, the rest are not held back by them.
 */
export async function recordEvents(db: DbHandle, partition: string, incoming: IncomingEvent[]): Promise<{ processed: number; failed: string[] }> {
  const failed: string[] = [];
  const accepted: { machineId: string; type: EventType; message: string }[] = [];
  incoming.forEach((e, i) => {
    if (!UUID.test(e.machineId)) failed.push(`${e.machineId || `events[${i}]`}: machine_id is not a UUID`);
    else if (!e.type) failed.push(`${e.machineId}: unknown event type ${e.rawType}`);
    else if (e.message.length > 4096) failed.push(`${e.machineId}: message longer than 4096 characters`);
    else accepted.push({ machineId: e.machineId.toLowerCase(), type: e.type, message: e.message });
  });
  const ids = [...new Set(accepted.map((e) => e.machineId))].sort();
  const now = new Date();
  let processed = 0;
  await inTransaction(db, async (tx) => {
    // New bare records may be made: a partition delete must wait for them and count them.
    if (ids.length > 0) await referenceHolds.partition(tx, partition);
    await machines.ensure(tx, ids, partition);
    for (const { machine, events } of await machines.lockWithEvents(tx, ids)) {
      if (machine.partitionId && machine.partitionId !== partition) {
        failed.push(`${machine.id}: the machine is in partition "${machine.partitionId}", not "${partition}"`);
        continue;
      }
      let container = events ? containerFromRow(events) : emptyContainer();
      for (const e of accepted) {
        if (e.machineId !== machine.id) continue;
        container = applyEvent(container, { type: e.type, message: e.message, time: now });
        processed++;
      }
      await machines.saveEvents(tx, rowFromContainer(machine.id, container));
    }
  });
  return { processed, failed };
}
