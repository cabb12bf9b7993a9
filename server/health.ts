import { HealthStatus } from "../gen/metal/api/v1/health_pb.js";

/** One part of the control plane that can be checked. */
export interface HealthCheck {
  name: string;
  check(): Promise<void>;
}

export interface PartHealth {
  name: string;
  status: HealthStatus;
  message: string;
}

const CHECK_TIMEOUT_MS = 2_000;

/**
 * What a check throws when its part fails but the whole still serves (e.g. a
 * masterdata-api of its own is down: partition traffic and operator calls go
 * on). The part is DEGRADED, and the gRPC health protocol still says SERVING.
 */
export class Degraded extends Error {}

/** Runs every check with a time limit; the overall status is the worst part's. */
export async function checkHealth(checks: readonly HealthCheck[]): Promise<{ status: HealthStatus; parts: PartHealth[] }> {
  const parts = await Promise.all(
    checks.map(async (c): Promise<PartHealth> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          c.check(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
          }),
        ]);
        return { name: c.name, status: HealthStatus.HEALTHY, message: "" };
      } catch (err) {
        return { name: c.name, status: err instanceof Degraded ? HealthStatus.DEGRADED : HealthStatus.UNHEALTHY, message: err instanceof Error ? err.message : String(err) };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const status = parts.reduce((worst, p) => Math.max(worst, p.status), HealthStatus.HEALTHY) as HealthStatus;
  return { status, parts };
}
