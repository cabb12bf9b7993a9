import { collectDefaultMetrics, Counter, Histogram, Registry } from "prom-client";

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
