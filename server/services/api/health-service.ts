import type { ServiceImpl } from "@connectrpc/connect";
import type { HealthService } from "../../../gen/metal/api/v1/health_pb.js";
import { checkHealth, type HealthCheck } from "../../health.js";

export function createHealthService(checks: readonly HealthCheck[]): ServiceImpl<typeof HealthService> {
  return {
    async get() {
      const { status, parts } = await checkHealth(checks);
      return { status, services: parts };
    },
  };
}
