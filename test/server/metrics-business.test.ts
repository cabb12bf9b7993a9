import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { capacityInput } from "../../server/convert/capacity.js";
import type { DbHandle } from "../../server/db/handle.js";
import { computeCapacity } from "../../server/domain/capacity.js";
import { runCommandExpiryJob } from "../../server/jobs/command-expiry.js";
import { exportBusinessMetrics } from "../../server/metrics/business.js";
import { countSwitchSyncs, outcomeOf } from "../../server/metrics/events.js";
import { createMetrics } from "../../server/metrics.js";
import { capacityRepository } from "../../server/repositories/capacity-repository.js";
import { eventually } from "../helpers/eventually.js";
import { useMetalDatabase } from "../helpers/metal-db.js";
import { S1_HARDWARE_JSON } from "../helpers/partition-fixture.js";
import { type Exposition, parseExposition, samplesOf, sampleValue } from "../helpers/prometheus-text.js";

// The cluster-wide business metrics against real PostgreSQL: the right numbers for a known set of rows, the same
// number of statements per scrape for 20 machines as for 3,000, and a scrape that survives a database it cannot read.
let db: DbHandle;
let url: string;
const pools: pg.Pool[] = [];

/** A handle on the test database that counts the statements it sends. */
function countingHandle(): { db: DbHandle; statements: () => number } {
  let n = 0;
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pools.push(pool);
  const handle = drizzle({ client: pool, logger: { logQuery: () => void n++ } }) as unknown as DbHandle;
  return { db: handle, statements: () => n };
}

const replica = {
  replicaId: "r-test",
  daemonSessions: () => [
    { kind: "switch", partition: "p1" },
    { kind: "switch", partition: "p1" },
    { kind: "bmc", partition: "p1" },
  ],
  waitStreams: () => 7,
};

async function insertMachines(n: number, cols: { partition?: string; size?: string; state?: string; waiting?: boolean; liveliness?: string; project?: string; prefix: string }) {
  await db.execute(sql`
    insert into machines (id, partition_id, size_id, rack_id, state, state_reason, waiting_until, hardware, allocation, project)
    select ${cols.prefix} || '-' || g, ${cols.partition ?? "p1"}, ${cols.size ?? "s1"}, 'r1', ${cols.state ?? "available"}, '',
           case when ${cols.waiting ?? true} then now() + interval '1 hour' end, ${S1_HARDWARE_JSON}::jsonb,
           case when ${cols.project ?? null}::text is null then null else jsonb_build_object('project', ${cols.project ?? null}::text) end, ${cols.project ?? null}
    from generate_series(1, ${n}) g`);
  if (cols.liveliness !== "") {
    await db.execute(sql`
      insert into machine_events (machine_id, liveliness, events, last_event_time)
      select ${cols.prefix} || '-' || g, ${cols.liveliness ?? "Alive"}, '[]'::jsonb, now() from generate_series(1, ${n}) g`);
  }
}

beforeAll(async () => {
  ({ db, url } = await useMetalDatabase());
  await db.execute(sql`insert into partitions (id) values ('p1'), ('p2')`);
  await db.execute(sql`insert into sizes (id, constraints) values ('s1', '[]'::jsonb), ('s2', '[]'::jsonb)`);
  await insertMachines(10, { prefix: "free" });
  await insertMachines(2, { prefix: "tainted", state: "tainted" });
  await insertMachines(1, { prefix: "locked", state: "locked", waiting: false, project: "pa" });
  await insertMachines(3, { prefix: "alloc", waiting: false, project: "pa" });
  await insertMachines(1, { prefix: "reserved-use", waiting: false, project: "pr" });
  await insertMachines(2, { prefix: "dead", liveliness: "Dead" });
  await insertMachines(1, { prefix: "fresh", liveliness: "" });
  await insertMachines(4, { prefix: "p2", partition: "p2", size: "s2" });
  // Project pr reserves 4 machines of s1 in p1 and uses 1: 3 of the allocatable ones are held for it.
  await db.execute(sql`insert into size_reservations (id, size_id, project, partition_ids, amount) values ('res1', 's1', 'pr', '{p1}', 4)`);
  await db.execute(sql`
    insert into switches (id, partition_id, rack_id, nics, last_sync, last_sync_error) values
      ('leaf01', 'p1', 'r1', '[]'::jsonb, jsonb_build_object('time', (now() - interval '30 seconds')::text, 'durationMs', 250, 'error', ''), null),
      ('leaf02', 'p1', 'r1', '[]'::jsonb, jsonb_build_object('time', (now() - interval '5 seconds')::text, 'durationMs', 1000, 'error', 'frr reload failed'),
                                          jsonb_build_object('time', '2026-01-01T00:00:00Z', 'durationMs', 1000, 'error', 'frr reload failed')),
      ('leaf03', 'p1', 'r1', '[]'::jsonb, null, null)`);
  await db.execute(sql`
    insert into bmc_commands (id, machine_id, partition_id, command, status, deadline, created_at) values
      ('c1', 'free-1', 'p1', 'RESET', 'pending', now() - interval '1 second', now() - interval '600 seconds'),
      ('c2', 'free-2', 'p1', 'LED_ON', 'pending', now() - interval '1 second', now()),
      ('c3', 'free-3', 'p1', 'RESET', 'done', now() + interval '5 minutes', now() - interval '900 seconds')`);
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => {})));
});

async function scrapeWith(handle: DbHandle): Promise<{ e: Exposition; events: ReturnType<typeof exportBusinessMetrics>; metrics: ReturnType<typeof createMetrics> }> {
  const metrics = createMetrics();
  const events = exportBusinessMetrics(metrics, handle, replica, { cacheMs: 0 });
  return { e: parseExposition(await metrics.registry.metrics()), events, metrics };
}

describe("cluster-wide business metrics", () => {
  it("count machines by state and allocation, liveliness, waiting, allocatable and free capacity", async () => {
    const { e } = await scrapeWith(countingHandle().db);
    const m = (state: string, allocation: string, partition = "p1", size = "s1") => sampleValue(e, "metal_machines", { partition, size, state, allocation });
    expect(m("available", "free")).toBe(13);
    expect(m("available", "allocated")).toBe(4);
    expect(m("tainted", "free")).toBe(2);
    expect(m("locked", "allocated")).toBe(1);
    expect(m("locked", "free")).toBe(0);
    expect(m("available", "free", "p2", "s2")).toBe(4);
    const l = (liveliness: string) => sampleValue(e, "metal_machines_by_liveliness", { partition: "p1", size: "s1", liveliness });
    expect([l("alive"), l("dead"), l("unknown"), l("none")]).toEqual([17, 2, 0, 1]);
    // Waiting: every free machine with a lease (free, tainted, dead, fresh).
    expect(sampleValue(e, "metal_machines_waiting", { partition: "p1", size: "s1" })).toBe(15);
    // Allocatable: available, free, waiting and alive: the 10 "free" ones only.
    expect(sampleValue(e, "metal_machines_allocatable", { partition: "p1", size: "s1" })).toBe(10);
    expect(sampleValue(e, "metal_machines_free", { partition: "p1", size: "s1" })).toBe(7);
    expect(sampleValue(e, "metal_machines_free", { partition: "p2", size: "s2" })).toBe(4);
    expect(sampleValue(e, "metal_size_reservations_machines", { partition: "p1", size: "s1", usage: "reserved" })).toBe(4);
    expect(sampleValue(e, "metal_size_reservations_machines", { partition: "p1", size: "s1", usage: "used" })).toBe(1);
    expect(samplesOf(e, "metal_size_reservations_machines", { partition: "p2" })).toEqual([]);
  });

  it("agree with PartitionService.Capacity on allocatable and free machines", async () => {
    const { e } = await scrapeWith(countingHandle().db);
    const capacity = computeCapacity(capacityInput(await capacityRepository.read(db, {}), undefined, new Date()));
    for (const p of capacity) {
      for (const s of p.sizes) {
        if (s.size === "unknown") continue;
        expect(sampleValue(e, "metal_machines_allocatable", { partition: p.partition, size: s.size }), `${p.partition}/${s.size}`).toBe(s.allocatable);
        expect(sampleValue(e, "metal_machines_free", { partition: p.partition, size: s.size }), `${p.partition}/${s.size}`).toBe(s.free);
      }
    }
  });

  it("report switch sync age, duration and failure, and the BMC queue", async () => {
    const { e } = await scrapeWith(countingHandle().db);
    const sw = (name: string, id: string) => sampleValue(e, name, { partition: "p1", switch: id });
    expect(sw("metal_switch_last_sync_age_seconds", "leaf01")).toBeGreaterThanOrEqual(30);
    expect(sw("metal_switch_last_sync_age_seconds", "leaf01")).toBeLessThan(3600);
    expect(sw("metal_switch_last_sync_duration_seconds", "leaf01")).toBe(0.25);
    expect(sw("metal_switch_sync_failing", "leaf01")).toBe(0);
    expect(sw("metal_switch_sync_failing", "leaf02")).toBe(1);
    expect(sw("metal_switch_last_sync_error_timestamp_seconds", "leaf02")).toBe(Date.parse("2026-01-01T00:00:00Z") / 1000);
    expect(sw("metal_switch_last_sync_error_timestamp_seconds", "leaf01")).toBeUndefined();
    // Never synced: no age (an alert on a missing series, not on a made-up one), but its failure flag is 0.
    expect(sw("metal_switch_last_sync_age_seconds", "leaf03")).toBeUndefined();
    expect(sw("metal_switch_sync_failing", "leaf03")).toBe(0);
    expect(sampleValue(e, "metal_bmc_commands_pending", { partition: "p1" })).toBe(2);
    expect(sampleValue(e, "metal_bmc_command_oldest_pending_age_seconds", { partition: "p1" })).toBeGreaterThanOrEqual(600);
    expect(sampleValue(e, "metal_bmc_commands_pending", { partition: "p2" })).toBe(0);
    expect(sampleValue(e, "metal_bmc_command_oldest_pending_age_seconds", { partition: "p2" })).toBe(0);
    expect(sampleValue(e, "metal_wait_streams_open", { replica: "r-test" })).toBe(7);
    expect(sampleValue(e, "metal_daemon_sessions", { replica: "r-test", kind: "switch", partition: "p1" })).toBe(2);
    expect(sampleValue(e, "metal_daemon_sessions", { replica: "r-test", kind: "bmc", partition: "p1" })).toBe(1);
  });

  it("count the commands the expiry job times out, by partition", async () => {
    const metrics = createMetrics();
    const events = exportBusinessMetrics(metrics, countingHandle().db, replica, { cacheMs: 0 });
    expect(await runCommandExpiryJob(db, new Date(), events)).toHaveLength(2);
    const e = parseExposition(await metrics.registry.metrics());
    expect(sampleValue(e, "metal_bmc_commands_settled_total", { partition: "p1", outcome: "timed_out" })).toBe(2);
    expect(sampleValue(e, "metal_bmc_commands_pending", { partition: "p1" })).toBe(0);
  });

  it("cost the same statements per scrape for 3,000 more machines: one per family, none per machine", async () => {
    const small = countingHandle();
    const before = await scrapeWith(small.db);
    const perScrapeSmall = small.statements();
    await insertMachines(3000, { prefix: "bulk" });
    await insertMachines(500, { prefix: "bulk2", partition: "p2", size: "s2", project: "pb", waiting: false });
    const big = countingHandle();
    const after = await scrapeWith(big.db);
    const perScrapeBig = big.statements();
    expect(perScrapeBig).toBe(perScrapeSmall);
    // The statement timeout and four aggregate reads (machines, reservations, switches, BMC queues) between begin and
    // commit, for all twelve cluster-wide families.
    expect(perScrapeBig).toBe(7);
    // The output grows with partitions and sizes, not with machines.
    const series = (x: Exposition) => x.samples.filter((s) => s.name.startsWith("metal_") && !s.name.startsWith("metal_metrics_")).length;
    expect(series(after.e)).toBe(series(before.e));
    expect(sampleValue(after.e, "metal_machines_allocatable", { partition: "p1", size: "s1" })).toBe(3010);
    expect(sampleValue(after.e, "metal_machines", { partition: "p2", size: "s2", state: "available", allocation: "allocated" })).toBe(500);
  });

  it("give up a read that waits too long, and PostgreSQL cancels it instead of letting reads pile up", async () => {
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    try {
      await locker.query("begin");
      await locker.query("lock table switches in access exclusive mode");
      const metrics = createMetrics();
      const pool = new pg.Pool({ connectionString: url, max: 1, application_name: "metrics-timeout-test" });
      pools.push(pool);
      exportBusinessMetrics(metrics, drizzle({ client: pool }) as unknown as DbHandle, replica, { cacheMs: 0, readTimeoutMs: 300 });
      const e = parseExposition(await metrics.registry.metrics());
      expect(samplesOf(e, "metal_machines")).toEqual([]);
      expect(sampleValue(e, "metal_metrics_database_read_failures_total")).toBe(1);
      // The blocked statement does not stay behind the lock: the server cancelled it.
      await eventually("the timed-out read to be gone from the server", async () => {
        const waiting = await locker.query("select count(*)::int as n from pg_stat_activity where application_name = 'metrics-timeout-test' and wait_event_type = 'Lock'");
        return waiting.rows[0].n === 0;
      });
    } finally {
      await locker.query("rollback");
      await locker.end();
    }
  });

  it("leave the cluster-wide families out of a scrape whose database read fails, and count the failure", async () => {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    await pool.end();
    const { e, metrics } = await scrapeWith(drizzle({ client: pool }) as unknown as DbHandle);
    expect(samplesOf(e, "metal_machines")).toEqual([]);
    expect(sampleValue(e, "metal_metrics_database_read_failures_total")).toBe(1);
    // What the replica knows by itself is still there.
    expect(sampleValue(e, "metal_wait_streams_open", { replica: "r-test" })).toBe(7);
    // A failed read is not cached: the next scrape tries again (and fails again here).
    parseExposition(await metrics.registry.metrics());
    expect(sampleValue(parseExposition(await metrics.registry.metrics()), "metal_metrics_database_read_failures_total")).toBe(3);
  });
});

describe("business events", () => {
  it("count stored switch syncs by outcome, and none for a switch that is gone", async () => {
    const metrics = createMetrics();
    const events = exportBusinessMetrics(metrics, countingHandle().db, replica, { cacheMs: 0 });
    const stored = new Set(["leaf01"]);
    const write = countSwitchSyncs(async (id: string, _report: { failed: boolean }) => stored.has(id), events);
    expect(await write("leaf01", { failed: false })).toBe(true);
    expect(await write("leaf01", { failed: true })).toBe(true);
    expect(await write("leaf01", { failed: true })).toBe(true);
    expect(await write("gone", { failed: true })).toBe(false);
    const e = parseExposition(await metrics.registry.metrics());
    expect(sampleValue(e, "metal_switch_syncs_total", { switch: "leaf01", outcome: "ok" })).toBe(1);
    expect(sampleValue(e, "metal_switch_syncs_total", { switch: "leaf01", outcome: "failed" })).toBe(2);
    expect(samplesOf(e, "metal_switch_syncs_total", { switch: "gone" })).toEqual([]);
  });

  it("name outcomes by the Connect code in snake case", () => {
    expect(outcomeOf()).toBe("ok");
    expect(outcomeOf(new ConnectError("x", Code.ResourceExhausted))).toBe("resource_exhausted");
    expect(outcomeOf(new ConnectError("x", Code.FailedPrecondition))).toBe("failed_precondition");
    expect(outcomeOf(new Error("boom"))).toBe("internal");
  });
});
