import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** The Prometheus registry of one app instance (not the global one, so tests can build many apps). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const rpcHandled = new Counter({
    name: "metal_rpc_handled_total",
    help: "RPCs completed, by service, method and Connect code.",
    labelNames: ["service", "method", "code"] as const,
    registers: [registry],
  });
  const rpcDuration = new Histogram({
    name: "metal_rpc_duration_seconds",
    help: "Time to complete an RPC (for streams: to open it).",
    labelNames: ["service", "method"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  return { registry, rpcHandled, rpcDuration };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The classes of long-lived streams whose open counts are exported (see interceptors/stream-limits.ts). */
const STREAM_CLASSES = ["public", "wait", "session", "watch"] as const;

/** Exports how many long-lived streams of each class are open, read when scraped: what an operator compares with the limits. */
export function exportOpenStreams(metrics: Metrics, open: (cls: (typeof STREAM_CLASSES)[number]) => number): void {
  new Gauge({
    name: "metal_open_streams",
    help: "Long-lived streams open on this replica, by class (public: health Watch; wait: BootService.Wait; session: daemon sessions and console relays).",
    labelNames: ["class"] as const,
    registers: [metrics.registry],
    collect() {
      for (const cls of STREAM_CLASSES) this.set({ class: cls }, open(cls));
    },
  });
}

/** Answers `GET /metrics` with the registry's exposition and returns true; anything else is left to the caller. */
export function serveMetrics(metrics: Metrics, req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): boolean {
  if (req.url !== "/metrics" || req.method !== "GET") return false;
  metrics.registry.metrics().then(
    (body) => {
      res.writeHead(200, { "content-type": metrics.registry.contentType });
      res.end(body);
    },
    () => {
      res.writeHead(500);
      res.end();
    },
  );
  return true;
}
