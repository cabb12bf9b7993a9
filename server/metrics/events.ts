import { Code, ConnectError } from "@connectrpc/connect";

/**
 * What the use cases and sessions report to `/metrics` as it happens
 * (server/metrics/business.ts counts it). Every method is optional to call
 * and cheap; NO_BUSINESS_EVENTS is the default where nothing counts (unit
 * tests, tools). Label values come from rows the server found, never
 * straight from a request: a caller cannot mint series.
 */
export interface BusinessEvents {
  /** An allocation (MachineService.Create) ended; partition and size are "" when the request never resolved them. */
  allocation(labels: { partition: string; size: string; outcome: string }): void;
  /** A free (MachineService.Delete) ended; partition and size are "" when the machine was not found. */
  free(labels: { partition: string; size: string; outcome: string }): void;
  /** BMC commands of a partition were settled: done or failed by metal-bmc's result, timed out by the expiry job. */
  bmcCommandsSettled(partition: string, outcome: "done" | "failed" | "timed_out", count?: number): void;
  /** A switch's sync report was stored. */
  switchSync(switchId: string, failed: boolean): void;
}

export const NO_BUSINESS_EVENTS: BusinessEvents = {
  allocation: () => {},
  free: () => {},
  bmcCommandsSettled: () => {},
  switchSync: () => {},
};

/** "ok", or the Connect code of the error in snake case ("resource_exhausted", "not_found", "internal" also for any other error, ...): a closed set. */
export function outcomeOf(err?: unknown): string {
  if (err === undefined) return "ok";
  // Not a ConnectError: a fault of ours, which the caller sees as Internal (interceptors/observe.ts).
  if (!(err instanceof ConnectError)) return "internal";
  const code = err.code;
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** A switch sync writer (sessions/switch/sync-writer.ts) that counts every report it stored. */
export function countSwitchSyncs<R extends { failed: boolean }>(write: (switchId: string, report: R) => Promise<boolean>, events: BusinessEvents): (switchId: string, report: R) => Promise<boolean> {
  return async (switchId, report) => {
    const stored = await write(switchId, report);
    // A report for a switch that is gone stored nothing: it is not counted (and mints no series).
    if (stored) events.switchSync(switchId, report.failed);
    return stored;
  };
}
