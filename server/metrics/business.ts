import { Counter, Gauge } from "prom-client";
import type { DbHandle } from "../db/handle.js";
import type { Metrics } from "../metrics.js";
import { type BusinessSnapshot, metricsRepository } from "../repositories/metrics-repository.js";
import type { BusinessEvents } from "./events.js";

/**
 * The business metrics of `/metrics` (docs/metrics.md): what an operator
 * pages on. Three kinds:
 *
 * - cluster-wide gauges, read from PostgreSQL when scraped (one aggregate
 *   statement per family, server/repositories/metrics-repository.ts); every
 *   replica reports the same values and they carry no `replica` label:
 *   aggregate them with max(), never sum();
 * - per-replica gauges (this process's Wait streams and daemon sessions),
 *   labelled `replica` with the replica's id (as ConnectionService.List names it):
 *   sum them over replicas;
 * - counters, incremented where the event happens on this replica (the use
 *   cases, the daemon sessions, the command expiry job): sum their rates
 *   over replicas.
 */

/** Where the per-replica gauges come from: this replica's session registries. */
export interface ReplicaSources {
  replicaId: string;
  /** The edge daemons whose streams this replica holds. */
  daemonSessions(): readonly { kind: string; partition: string }[];
  /** How many machines hold a Wait stream on this replica. */
  waitStreams(): number;
}

export interface BusinessMetricsOptions {
  /** A scrape within this long of the last read reuses it (default 2 s): many scrapers cost one read. */
  cacheMs?: number;
  /** A database read that takes longer is given up (and cancelled in PostgreSQL); the cluster-wide families are left out of that scrape (default 5 s). */
  readTimeoutMs?: number;
}

const STATES = ["available", "tainted", "locked"] as const;
const ALLOCATION = ["allocated", "free"] as const;
const LIVELINESS = ["alive", "dead", "unknown", "none"] as const;
const liveliness = (raw: string) => (raw === "" ? "none" : raw.toLowerCase());

type ReadResult = { snapshot: BusinessSnapshot; totals: SizeTotals[] } | undefined;

/** Per partition and size: the sums the machine families report. */
interface SizeTotals {
  partition: string;
  size: string;
  byState: Map<string, number>;
  byLiveliness: Map<string, number>;
  waiting: number;
  allocatable: number;
  reserved: number;
  reservedUsed: number;
  heldForOthers: number;
}

/** Folds the snapshot into per-(partition, size) totals; pure. */
export function foldSnapshot(snapshot: BusinessSnapshot): SizeTotals[] {
  const totals = new Map<string, SizeTotals>();
  const of = (partition: string, size: string) => {
    const key = `${partition}\u0000${size}`;
    let t = totals.get(key);
    if (!t) totals.set(key, (t = { partition, size, byState: new Map(), byLiveliness: new Map(), waiting: 0, allocatable: 0, reserved: 0, reservedUsed: 0, heldForOthers: 0 }));
    return t;
  };
  for (const r of snapshot.machines) {
    const t = of(r.partition, r.size);
    const key = `${r.state}\u0000${r.allocated ? "allocated" : "free"}`;
    t.byState.set(key, (t.byState.get(key) ?? 0) + r.count);
    const l = liveliness(r.liveliness);
    t.byLiveliness.set(l, (t.byLiveliness.get(l) ?? 0) + r.count);
    if (r.waiting && !r.allocated) t.waiting += r.count;
    // The allocation candidate rule (machine-repository's candidateCondition): available, free, waiting, alive, of a known size.
    if (r.state === "available" && !r.allocated && r.waiting && r.liveliness === "Alive" && r.partition !== "unknown" && r.size !== "unknown") t.allocatable += r.count;
  }
  for (const r of snapshot.reservations) {
    const t = of(r.partition, r.size);
    const used = Math.min(r.used, r.amount);
    t.reserved += r.amount;
    t.reservedUsed += used;
    t.heldForOthers += r.amount - used;
  }
  return [...totals.values()];
}

/**
 * Registers the business metrics on the app's registry and returns the
 * sink the use cases count their events into.
 */
export function exportBusinessMetrics(metrics: Metrics, db: DbHandle, replica: ReplicaSources, opts: BusinessMetricsOptions = {}): BusinessEvents {
  const registers = [metrics.registry];
  const cacheMs = opts.cacheMs ?? 2_000;
  const readTimeoutMs = opts.readTimeoutMs ?? 5_000;

  // One read serves every family of a scrape (prom-client collects them concurrently: the first starts it, the
  // others join it) and, once done, the scrapes of the next cacheMs.
  let inFlight: Promise<ReadResult> | undefined;
  let last: { at: number; result: ReadResult } | undefined;
  const read = (): Promise<ReadResult> => {
    if (inFlight) return inFlight;
    if (last && Date.now() - last.at < cacheMs) return Promise.resolve(last.result);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`reading the business metrics took longer than ${readTimeoutMs} ms`)), readTimeoutMs);
    });
    const attempt: Promise<ReadResult> = Promise.race([metricsRepository.snapshot(db, { statementTimeoutMs: readTimeoutMs }), timeout])
      .then((snapshot) => {
        const result = { snapshot, totals: foldSnapshot(snapshot) };
        readDuration.set((performance.now() - started) / 1000);
        last = { at: Date.now(), result };
        return result;
      })
      // A failed read is not kept: the next scrape tries again.
      .catch(() => {
        readFailures.inc();
        return undefined;
      })
      .finally(() => {
        clearTimeout(timer);
        inFlight = undefined;
      });
    inFlight = attempt;
    return attempt;
  };

  // Both wait for the scrape's read, so that they report on it, not on the one before.
  const readFailures = new Counter({
    name: "metal_metrics_database_read_failures_total",
    help: "Reads of the cluster-wide business metrics from PostgreSQL that failed or timed out; the scrapes they served leave the cluster-wide families out.",
    registers,
    async collect() {
      await read();
    },
  });
  const readDuration = new Gauge({
    name: "metal_metrics_database_read_duration_seconds",
    help: "How long the last read of the cluster-wide business metrics from PostgreSQL took (four aggregate statements in one read-only transaction).",
    registers,
    async collect() {
      await read();
    },
  });

  /** A cluster-wide gauge: reset and refilled from the shared read on every scrape, so vanished series vanish. */
  const clusterGauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: (set: (labels: Record<L, string>, value: number) => void, data: { snapshot: BusinessSnapshot; totals: SizeTotals[] }) => void,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        const data = await read();
        this.reset();
        if (data) fill((labels, value) => this.set(labels, value), data);
      },
    });

  clusterGauge(
    "metal_machines",
    "Machines by partition, size, operator state (available, tainted = held back by an operator, locked) and allocation (allocated, free). Cluster-wide, read from PostgreSQL.",
    ["partition", "size", "state", "allocation"],
    (set, { totals }) => {
      for (const t of totals)
        for (const state of STATES) for (const allocation of ALLOCATION) set({ partition: t.partition, size: t.size, state, allocation }, t.byState.get(`${state}\u0000${allocation}`) ?? 0);
    },
  );
  clusterGauge(
    "metal_machines_by_liveliness",
    "Machines by partition, size and liveliness (alive, dead, unknown; none before a machine's first event). Cluster-wide, read from PostgreSQL.",
    ["partition", "size", "liveliness"],
    (set, { totals }) => {
      for (const t of totals) for (const l of LIVELINESS) set({ partition: t.partition, size: t.size, liveliness: l }, t.byLiveliness.get(l) ?? 0);
    },
  );
  clusterGauge(
    "metal_machines_waiting",
    "Free machines whose metal-hammer holds a Wait stream (on any replica), by partition and size. Cluster-wide, read from PostgreSQL.",
    ["partition", "size"],
    (set, { totals }) => {
      for (const t of totals) set({ partition: t.partition, size: t.size }, t.waiting);
    },
  );
  clusterGauge(
    "metal_machines_allocatable",
    "Machines an allocation could take right now (available, free, waiting, alive), by partition and size, before size reservations. Cluster-wide, read from PostgreSQL.",
    ["partition", "size"],
    (set, { totals }) => {
      for (const t of totals) if (t.partition !== "unknown" && t.size !== "unknown") set({ partition: t.partition, size: t.size }, t.allocatable);
    },
  );
  clusterGauge(
    "metal_machines_free",
    "Free capacity: allocatable machines minus what size reservations still hold for their projects, by partition and size (what PartitionService.Capacity calls free for a project without reservations). Cluster-wide, read from PostgreSQL.",
    ["partition", "size"],
    (set, { totals }) => {
      for (const t of totals) if (t.partition !== "unknown" && t.size !== "unknown") set({ partition: t.partition, size: t.size }, Math.max(0, t.allocatable - t.heldForOthers));
    },
  );
  clusterGauge(
    "metal_size_reservations_machines",
    "Machines reserved by size reservations, by partition and size, and how many of them their projects use (usage: reserved, used). Cluster-wide, read from PostgreSQL.",
    ["partition", "size", "usage"],
    (set, { totals }) => {
      for (const t of totals) {
        if (t.reserved === 0) continue;
        set({ partition: t.partition, size: t.size, usage: "reserved" }, t.reserved);
        set({ partition: t.partition, size: t.size, usage: "used" }, t.reservedUsed);
      }
    },
  );
  clusterGauge(
    "metal_switch_last_sync_age_seconds",
    "Seconds since the switch's metal-core last reported a sync of its configuration (any outcome); absent for a switch that never reported one. Cluster-wide, read from PostgreSQL.",
    ["partition", "switch"],
    (set, { snapshot }) => {
      for (const s of snapshot.switches) if (s.lastSyncAgeSeconds !== null) set({ partition: s.partition, switch: s.switch }, s.lastSyncAgeSeconds);
    },
  );
  clusterGauge("metal_switch_last_sync_duration_seconds", "How long the switch's last reported sync took. Cluster-wide, read from PostgreSQL.", ["partition", "switch"], (set, { snapshot }) => {
    for (const s of snapshot.switches) if (s.lastSyncDurationMs !== null) set({ partition: s.partition, switch: s.switch }, s.lastSyncDurationMs / 1000);
  });
  clusterGauge(
    "metal_switch_sync_failing",
    "1 when the switch's last reported sync failed (its configuration is not applied), else 0. Cluster-wide, read from PostgreSQL.",
    ["partition", "switch"],
    (set, { snapshot }) => {
      for (const s of snapshot.switches) set({ partition: s.partition, switch: s.switch }, s.lastSyncFailed ? 1 : 0);
    },
  );
  clusterGauge(
    "metal_switch_last_sync_error_timestamp_seconds",
    "When the switch last reported a failed sync (Unix seconds); absent when none failed. Cluster-wide, read from PostgreSQL.",
    ["partition", "switch"],
    (set, { snapshot }) => {
      for (const s of snapshot.switches) if (s.lastErrorTime !== null) set({ partition: s.partition, switch: s.switch }, s.lastErrorTime);
    },
  );
  // Partitions with machines report an empty queue as 0, so "no commands pending" is a value, not an absence.
  const partitionsOf = (data: { snapshot: BusinessSnapshot; totals: SizeTotals[] }) => {
    const out = new Map<string, { pending: number; oldest: number }>();
    for (const t of data.totals) if (t.partition !== "unknown") out.set(t.partition, { pending: 0, oldest: 0 });
    for (const q of data.snapshot.bmcQueues) out.set(q.partition, { pending: q.pending, oldest: q.oldestAgeSeconds });
    return out;
  };
  clusterGauge(
    "metal_bmc_commands_pending",
    "BMC commands queued for the partition's metal-bmc and not yet settled (done, failed or timed out). Cluster-wide, read from PostgreSQL.",
    ["partition"],
    (set, data) => {
      for (const [partition, q] of partitionsOf(data)) set({ partition }, q.pending);
    },
  );
  clusterGauge("metal_bmc_command_oldest_pending_age_seconds", "Age of the partition's oldest pending BMC command (0 when none is pending). Cluster-wide, read from PostgreSQL.", ["partition"], (set, data) => {
    for (const [partition, q] of partitionsOf(data)) set({ partition }, q.oldest);
  });

  new Gauge({
    name: "metal_wait_streams_open",
    help: "Machines whose metal-hammer holds its BootService.Wait stream on this replica. Per replica.",
    labelNames: ["replica"] as const,
    registers,
    collect() {
      this.set({ replica: replica.replicaId }, replica.waitStreams());
    },
  });
  new Gauge({
    name: "metal_daemon_sessions",
    help: "Edge daemon sessions (kind: switch = metal-core, bmc = metal-bmc) this replica holds, by partition. Per replica.",
    labelNames: ["replica", "kind", "partition"] as const,
    registers,
    collect() {
      this.reset();
      const counts = new Map<string, { kind: string; partition: string; n: number }>();
      for (const s of replica.daemonSessions()) {
        const key = `${s.kind}\u0000${s.partition}`;
        const c = counts.get(key);
        if (c) c.n++;
        else counts.set(key, { kind: s.kind, partition: s.partition, n: 1 });
      }
      for (const kind of ["switch", "bmc"]) if (![...counts.values()].some((c) => c.kind === kind)) this.set({ replica: replica.replicaId, kind, partition: "" }, 0);
      for (const c of counts.values()) this.set({ replica: replica.replicaId, kind: c.kind, partition: c.partition }, c.n);
    },
  });

  const allocations = new Counter({
    name: "metal_machine_allocations_total",
    help: "Machine and firewall allocations (MachineService.Create) on this replica, by partition, size and outcome (ok, or the Connect code in snake case, e.g. resource_exhausted when no machine was free).",
    labelNames: ["partition", "size", "outcome"] as const,
    registers,
  });
  const frees = new Counter({
    name: "metal_machine_frees_total",
    help: "Machine frees (MachineService.Delete) on this replica, by partition, size and outcome (ok, or the Connect code in snake case).",
    labelNames: ["partition", "size", "outcome"] as const,
    registers,
  });
  const bmcSettled = new Counter({
    name: "metal_bmc_commands_settled_total",
    help: "BMC commands settled on this replica, by partition and outcome: done or failed (metal-bmc's result, or refused before dispatch), timed_out (the expiry job).",
    labelNames: ["partition", "outcome"] as const,
    registers,
  });
  const switchSyncs = new Counter({
    name: "metal_switch_syncs_total",
    help: "Sync reports of metal-core stored on this replica, by switch and outcome (ok, failed).",
    labelNames: ["switch", "outcome"] as const,
    registers,
  });

  return {
    allocation: (l) => allocations.inc({ partition: l.partition, size: l.size, outcome: l.outcome }),
    free: (l) => frees.inc({ partition: l.partition, size: l.size, outcome: l.outcome }),
    bmcCommandsSettled: (partition, outcome, count = 1) => {
      if (count > 0) bmcSettled.inc({ partition, outcome }, count);
    },
    switchSync: (id, failed) => switchSyncs.inc({ switch: id, outcome: failed ? "failed" : "ok" }),
  };
}
