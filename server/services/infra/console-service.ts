import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { ConsoleService, ConsoleServiceRelayRequest } from "../../../gen/metal/infra/v1/console_pb.js";
import { clockOffsetMs, producedAtOnServer } from "../../sessions/console/production-time.js";
import type { RelayBroker, RelayResponse } from "../../sessions/console/relay-broker.js";
import { validator } from "../../validate/validator.js";

export interface ConsoleServiceDeps {
  consoles: RelayBroker;
}

/** A chunk of console output; a serial line at 115200 baud fills this in more than five seconds. */
const MAX_CHUNK = 64 * 1024;

/** metal-bmc's half of a console relay: it opens a Relay when its BMC session asks, then bytes flow both ways. */
export function createConsoleService({ consoles }: ConsoleServiceDeps): ServiceImpl<typeof ConsoleService> {
  return {
    async *relay(requests: AsyncIterable<ConsoleServiceRelayRequest>, ctx: HandlerContext): AsyncGenerator<RelayResponse> {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) return;
      const receivedAtMs = Date.now();
      const open = first.value.kind.case === "open" ? first.value.kind.value : undefined;
      const v = validator().id("partition", first.value.partition);
      if (!open) v.add("open", "the first message must be an open");
      else v.uuid("open.relay_id", open.relayId).uuid("open.machine_id", open.machineId).text("open.error", open.error, 4096);
      v.check();
      const relay = consoles.claim(first.value.partition, open!, ctx.signal);
      if (!relay) return;
      // Production times are metal-bmc's clock; the cut at the allocation's start is on the server's.
      const offsetMs = clockOffsetMs(open!.sentAt, receivedAtMs);
      relay.session.read(it, (msg) => {
        const k = msg.kind;
        if (k.case === "data") {
          if (k.value.length > MAX_CHUNK) throw new ConnectError(`data: at most ${MAX_CHUNK} bytes per message`, Code.InvalidArgument);
          relay.deliver(k.value, producedAtOnServer(msg.producedAt, offsetMs));
        } else if (k.case === "open") {
          throw new ConnectError("open: only the first message may be an open", Code.InvalidArgument);
        }
      });
      try {
        // metal-bmc learns why its relay was refused mid-way; a relay ended by the server side ends cleanly.
        yield* relay.session.outgoing();
      } finally {
        relay.session.close();
      }
    },
  };
}
