import { setTimeout as sleep } from "node:timers/promises";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus as Serving } from "../../../gen/grpc/health/v1/health_pb.js";
import { HealthStatus } from "../../../gen/metal/api/v1/health_pb.js";
import { notFound } from "../../errors.js";
import { checkHealth, type HealthCheck } from "../../health.js";

const WATCH_INTERVAL_MS = 5_000;

type Listener = (status: Serving) => void;

/**
 * One status poll for every open Watch: however many streams watch, the
 * databases are checked once per interval, and only while someone watches.
 */
class SharedStatus {
  private last: Serving | undefined;
  private readonly listeners = new Set<Listener>();
  private polling = false;

  constructor(
    private readonly poll: () => Promise<Serving>,
    private readonly intervalMs: number,
  ) {}

  /** The status once it differs from `known` (at once if the last poll already differs), or undefined when `signal` ends first. */
  changed(known: Serving | undefined, signal: AbortSignal): Promise<Serving | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    if (this.polling && this.last !== undefined && this.last !== known) return Promise.resolve(this.last);
    return new Promise((resolve) => {
      const done = (status: Serving | undefined) => {
        this.listeners.delete(listener);
        signal.removeEventListener("abort", onAbort);
        resolve(status);
      };
      const listener: Listener = (status) => {
        if (status !== known) done(status);
      };
      const onAbort = () => done(undefined);
      this.listeners.add(listener);
      signal.addEventListener("abort", onAbort, { once: true });
      if (!this.polling) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.polling = true;
    try {
      while (this.listeners.size > 0) {
        this.last = await this.poll().catch(() => Serving.NOT_SERVING);
        for (const l of [...this.listeners]) l(this.last);
        if (this.listeners.size === 0) break;
        await sleep(this.intervalMs, undefined, { ref: false });
      }
    } finally {
      // Nobody watches: the next watcher must not be told a status nobody checked lately.
      this.polling = false;
      this.last = undefined;
    }
  }
}

/**
 * The standard gRPC health protocol for load balancers and probes. The empty
 * service name is the whole server; a known service name reports the same.
 */
export function createGrpcHealthService(checks: readonly HealthCheck[], services: ReadonlySet<string>): ServiceImpl<typeof Health> {
  async function status(): Promise<Serving> {
    const { status } = await checkHealth(checks);
    return status === HealthStatus.UNHEALTHY ? Serving.NOT_SERVING : Serving.SERVING;
  }
  const shared = new SharedStatus(status, WATCH_INTERVAL_MS);
  return {
    async check(req) {
      if (req.service !== "" && !services.has(req.service)) throw notFound("service", req.service);
      return { status: await status() };
    },
    async *watch(req, ctx) {
      if (req.service !== "" && !services.has(req.service)) {
        yield { status: Serving.SERVICE_UNKNOWN };
        return;
      }
      let last: Serving | undefined;
      for (;;) {
        const now = await shared.changed(last, ctx.signal);
        if (now === undefined) return;
        yield { status: now };
        last = now;
      }
    },
  };
}
