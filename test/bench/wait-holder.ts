import { setMaxListeners } from "node:events";
import { createClient } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";

/**
 * A child process of the replica bench that holds Wait streams, as hammers
 * would on machines of their own. The bench's process holding all 10,000 of
 * them itself reached a 919 MB heap with 58 ms major collections, which
 * showed up as stalls in the very latency it measured; hammers do not share a
 * heap with the tenant who allocates.
 *
 * Told over IPC which streams to open ({ streams: [machineId, url][] }), it
 * answers { arrived: machineId, at } when a stream has its allocation, `at`
 * being this machine's clock (performance.timeOrigin + now(), the same clock
 * in every process here), and { failed } when a stream ends unexpectedly.
 */
export interface HolderOrder {
  token: string;
  /** Streams per HTTP/2 connection. */
  perConnection: number;
  streams: [machineId: string, url: string][];
}

export type HolderReport = { arrived: string; at: number } | { failed: string };

const now = () => performance.timeOrigin + performance.now();

/** To the bench, while it still listens: after it disconnected (the end of a run), a send would fail with EPIPE. */
const report = (r: HolderReport) => void (process.connected && process.send!(r));

function hold(order: HolderOrder, signal: AbortSignal): void {
  const byUrl = new Map<string, string[]>();
  for (const [id, url] of order.streams) byUrl.set(url, [...(byUrl.get(url) ?? []), id]);
  for (const [url, ids] of byUrl) {
    let client: ReturnType<typeof createClient<typeof BootService>> | undefined;
    ids.forEach((id, i) => {
      if (i % order.perConnection === 0) client = createClient(BootService, createTransport({ baseUrl: url, protocol: "grpc", token: order.token }));
      const boot = client!;
      void (async () => {
        try {
          for await (const msg of boot.wait({ partition: "p1", machineId: id }, { signal })) {
            if (msg.allocation) return report({ arrived: id, at: now() });
          }
          report({ failed: `the Wait stream of ${id} ended without its allocation` });
        } catch (err) {
          if (!signal.aborted) report({ failed: String(err) });
        }
      })();
    });
  }
}

if (process.send) {
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  process.on("message", (order: HolderOrder) => hold(order, abort.signal));
  // The bench ends its holders by closing the channel (or by dying).
  process.on("disconnect", () => {
    abort.abort();
    process.exit(0);
  });
}
