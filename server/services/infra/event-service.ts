import type { ServiceImpl } from "@connectrpc/connect";
import type { EventService } from "../../../gen/metal/infra/v1/event_pb.js";
import { eventTypeFromProto } from "../../convert/machine.js";
import type { DbHandle } from "../../db/handle.js";
import { recordEvents } from "../../usecases/machines/events.js";
import { validator } from "../../validate/validator.js";

const MAX_BATCH = 1000;

/** Provisioning events from the partition (pixie, metal-hammer, metal-core). */
export function createEventService({ db }: { db: DbHandle }): ServiceImpl<typeof EventService> {
  return {
    async send(req) {
      const v = validator().id("partition", req.partition);
      if (req.events.length > MAX_BATCH) v.add("events", `must have at most ${MAX_BATCH} entries`);
      v.check();
      const { processed, failed } = await recordEvents(
        db,
        req.partition,
        req.events.map((e) => ({ machineId: e.machineId, type: eventTypeFromProto(e.type), rawType: e.type, message: e.message })),
      );
      return { events: processed, failed };
    },
  };
}
