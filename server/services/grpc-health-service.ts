import type { ServiceImpl } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.js";
import { HealthStatus } from "../../gen/metal/api/v1/health_pb.js";
import { notFound } from "../errors.js";
import { checkHealth, type HealthCheck } from "../health.js";

const WATCH_INTERVAL_MS = 5_000;

/**
 * The standard gRPC health protocol for load balancers and probes. The empty
 * service name is the whole server; a known service name reports the same.
 */
export function createGrpcHealthService(checks: readonly HealthCheck[], services: ReadonlySet<string>): ServiceImpl<typeof Health> {
  async function status(): Promise<Serving> {
    const { status } = await checkHealth(checks);
    return status === HealthStatus.UNHEALTHY ? Serving.NOT_SERVING : Serving.SERVING;
  }
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
      while (!ctx.signal.aborted) {
        const now = await status();
        if (now !== last) yield { status: now };
        last = now;
        await sleep(WATCH_INTERVAL_MS, undefined, { signal: ctx.signal }).catch(() => {});
      }
    },
  };
}
