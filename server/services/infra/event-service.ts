import type { ServiceImpl } from "@connectrpc/connect";
import { EventService } from "../../../gen/metal/infra/v1/event_pb.js";
import { containerFromRow, eventTypeFromProto, rowFromContainer } from "../../convert/machine.js";
import { inTransaction, type Db } from "../../db/database.js";
import { applyEvent, emptyContainer, type EventType } from "../../domain/provisioning.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { validator } from "../../validate/validator.js";

const MAX_BATCH = 1000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Provisioning events from the partition (pixie, metal-hammer, metal-core).
 * A batch runs in one transaction: unknown machines get a bare record, every
 * container is locked, the events are applied in order with the server's
 * receive time, and each container is written once.
 */
export function createEventService({ db }: { db: Db<any> }): ServiceImpl<typeof EventService> {
  return {
    async send(req) {
      const v = validator().id("partition", req.partition);
      if (req.events.length > MAX_BATCH) v.add("events", `must have at most ${MAX_BATCH} entries`);
      v.check();
      const failed: string[] = [];
      const accepted: { machineId: string; type: EventType; message: string }[] = [];
      req.events.forEach((e, i) => {
        const type = eventTypeFromProto(e.type);
        if (!UUID.test(e.machineId)) failed.push(`${e.machineId || `events[${i}]`}: machine_id is not a UUID`);
        else if (!type) failed.push(`${e.machineId}: unknown event type ${e.type}`);
        else if (e.message.length > 4096) failed.push(`${e.machineId}: message longer than 4096 characters`);
        else accepted.push({ machineId: e.machineId.toLowerCase(), type, message: e.message });
      });
      const ids = [...new Set(accepted.map((e) => e.machineId))].sort();
      const now = new Date();
      let processed = 0;
      await inTransaction(db, async (tx) => {
        await machines.ensure(tx, ids, req.partition);
        const locked = await machines.lockWithEvents(tx, ids);
        for (const { machine, events } of locked) {
          if (machine.partitionId && machine.partitionId !== req.partition) {
            failed.push(`${machine.id}: the machine is in partition "${machine.partitionId}", not "${req.partition}"`);
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
      return { events: processed, failed };
    },
  };
}
