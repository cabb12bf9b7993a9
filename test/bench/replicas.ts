import { setMaxListeners } from "node:events";
import type { Client } from "@connectrpc/connect";
import pg from "pg";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { setUpPartition } from "../helpers/partition-fixture.js";
import { type Comparison, type Measurement, measure } from "./harness.js";
import { cpuMicros, launchReplicas, printOutputs, type ReplicaSet } from "./replica-launch.js";
import { insertMachines } from "./seed-machines.js";
import { startHolders } from "./wait-holders.js";

/** Open Wait streams, spread evenly over the replicas. */
const STREAMS = Number(process.env.BENCH_REPLICA_WAIT_STREAMS ?? 10_000);
/** Allocations timed per set, one after another. */
const ROUNDS = Number(process.env.BENCH_REPLICA_WAIT_ROUNDS ?? 200);
/** Rounds before the measured ones, on other machines, not counted. */
const WARMUP_ROUNDS = 10;
/** Streams per HTTP/2 connection (as wait-streams.ts: a few hundred hammers share one here). */
const PER_CONNECTION = 250;
/** Child processes holding the Wait streams (wait-holder.ts), as hammers on machines of their own would. */
const HOLDERS = Number(process.env.BENCH_REPLICA_WAIT_HOLDERS ?? 2);
const MACHINES = Number(process.env.BENCH_REPLICA_ALLOC_MACHINES ?? 1000);
const CLIENTS = Number(process.env.BENCH_REPLICA_ALLOC_CLIENTS ?? 64);
/** Allocated first and not measured, as in allocation.ts. */
const WARMUP = 200;
/** Allocation rounds per set, in turns; the best counts. */
const ALLOC_ROUNDS = Number(process.env.BENCH_REPLICA_ALLOC_ROUNDS ?? 2);
/** How long one allocation may take to reach its stream before the bench gives up. */
const DEADLINE_MS = 10_000;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

interface SetUp {
  set: ReplicaSet;
  raw: pg.Pool;
  infraToken: string;
  /** A /20 of project pb: more allocations than a /24 holds. */
  network: string;
  /** Tenant clients (admin token), one per replica. */
  tenants: Client<typeof MachineService>[];
  /** Machines allocated so far. */
  allocated: number;
}

async function setUp(set: ReplicaSet): Promise<SetUp> {
  const fixture = await setUpPartition(set.asTestServer(0));
  const network = (await set.replicas[0]!.client(NetworkService, set.adminToken).create({ project: "pb", partition: "p1", length: { ipv4: 20 } })).network!.id;
  return {
    set,
    raw: new pg.Pool({ connectionString: set.metalDatabaseUrl, max: 4 }),
    infraToken: fixture.infraToken,
    network,
    tenants: set.replicas.map((r) => r.client(MachineService, set.adminToken)),
    allocated: 0,
  };
}

/** Tenant allocations of every waiting machine there is, client j on replica j mod n (allocation.ts's call). */
async function allocateAll(s: SetUp, prefix: string, ops: number): Promise<Measured> {
  const n = s.tenants.length;
  s.allocated += ops;
  const name = `machine allocation, ${n} replica(s)`;
  const before = await cpuOf(s.set);
  const m = await measure(name, ops, CLIENTS, (i) => s.tenants[i % n]!.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: `${prefix}-${i}`, networks: [s.network] }));
  return { m, serverCpuUsPerCall: ((await cpuOf(s.set)) - before) / ops };
}

/** A measurement and the CPU its replicas (all of them together) spent per call: steadier than rates on a shared machine. */
interface Measured {
  m: Measurement;
  serverCpuUsPerCall: number;
}

const cpuOf = async (set: ReplicaSet) => (await Promise.all(set.replicas.map((r) => cpuMicros(r.proc.pid!)))).reduce((a, b) => a + b, 0);

/** No address handed out twice, and every waiting machine allocated exactly once. */
async function checkAllocations(s: SetUp): Promise<void> {
  const { rows } = await s.raw.query(`select (select count(*) - count(distinct ip) from ips)::int as dup, (select count(*) from machines where allocation is not null)::int as allocated`);
  if (rows[0].dup !== 0) throw new Error(`${rows[0].dup} addresses handed out twice`);
  if (rows[0].allocated !== s.allocated) throw new Error(`${rows[0].allocated} machines allocated, expected ${s.allocated}`);
}

/**
 * STREAMS Wait streams for fresh machines, stream i on replica i mod n; then
 * ROUNDS allocations by id one after another, each made through a replica
 * other than its stream's (with one replica, the same one), timed from the
 * allocation's response to its stream having it (0 when the stream was first).
 */
async function notifyAcross(s: SetUp, abort: AbortController): Promise<Measurement> {
  const n = s.set.replicas.length;
  const ids = await insertMachines(s.raw, STREAMS);
  const arrived = new Map<string, number>();
  let failed: string | undefined;
  /** Who waits for a machine's allocation to arrive: no polling, the bench must not take CPU from the servers it measures. */
  const waiters = new Map<string, () => void>();
  const holders = startHolders(HOLDERS, (report) => {
    if ("failed" in report) failed ??= report.failed;
    else {
      arrived.set(report.arrived, report.at);
      waiters.get(report.arrived)?.();
    }
  });
  abort.signal.addEventListener("abort", () => holders.stop(), { once: true });
  // Stream i on replica i mod n, held by holder i mod HOLDERS.
  holders.order((h) => ({
    token: s.infraToken,
    perConnection: PER_CONNECTION,
    streams: ids.flatMap((id, i): [string, string][] => (i % HOLDERS === h ? [[id, s.set.replicas[i % n]!.url]] : [])),
  }));
  const until = performance.now() + 300_000;
  for (;;) {
    const { rows } = await s.raw.query(`select count(*)::int as n from machines where id = any($1::text[]) and waiting_until > now()`, [ids]);
    if (rows[0].n === STREAMS) break;
    if (failed) throw new Error(failed);
    if (performance.now() > until) throw new Error(`${rows[0].n} of ${STREAMS} Wait streams open after 300 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const latencies: number[] = [];
  let started = performance.now();
  // The first rounds run code for the first time on every process (the first allocation took ~3 s and
  // its wake-up 270 ms): warm-up rounds on other machines, not counted, so the row measures the steady state.
  for (let round = -WARMUP_ROUNDS; round < ROUNDS; round++) {
    if (round === 0) started = performance.now();
    const warmup = round < 0;
    // +2 keeps the parity of the measured rounds: the same replica makes the allocation and the same one holds the stream.
    const i = warmup ? Math.floor((-round * STREAMS) / ROUNDS) + 2 : Math.floor((round * STREAMS) / ROUNDS);
    const id = ids[i]!;
    // Made on the next replica after the stream's: across replicas whenever there are several.
    await s.tenants[(i + 1) % n]!.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: `n${round}`, networks: [s.network], machineId: id });
    s.allocated++;
    // The holders' clock: performance.timeOrigin + now() is the same in every process on this machine.
    const answered = performance.timeOrigin + performance.now();
    if (!arrived.has(id)) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve, reject) => {
        waiters.set(id, resolve);
        // The re-check (60 s) would deliver it eventually; a bench that waits for that measures nothing.
        timer = setTimeout(() => reject(new Error(`round ${round}: the allocation did not reach its Wait stream within ${DEADLINE_MS} ms (do wake-ups cross replicas?)`)), DEADLINE_MS);
      }).finally(() => clearTimeout(timer));
    }
    if (!warmup) latencies.push(Math.max(0, arrived.get(id)! - answered));
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    name: `allocation -> Wait stream, ${n} replica(s), ${STREAMS} open`,
    ops: ROUNDS,
    concurrency: 1,
    seconds,
    perSecond: ROUNDS / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}

/** A set of replicas on a fresh database with the partition set up; `close` ends its streams and stops it. */
async function prepare(count: number): Promise<SetUp & { abort: AbortController; close(): Promise<void> }> {
  const abort = new AbortController();
  // One signal ends every stream of the set; that many listeners are expected.
  setMaxListeners(0, abort.signal);
  const set = await launchReplicas(count);
  try {
    const s = await setUp(set);
    return {
      ...s,
      abort,
      async close() {
        abort.abort();
        await s.raw.end();
        await set.stop();
      },
    };
  } catch (err) {
    printOutputs(set);
    await set.stop();
    throw err;
  }
}

const better = (a: Measured | undefined, b: Measured) => (a && a.m.perSecond >= b.m.perSecond ? a : b);

/**
 * Issue 15's rows: two metal-api processes on one PostgreSQL database and the
 * bench's own Mosquitto (replica-launch.ts), beside one metal-api process on
 * the in-process bus, each on a fresh database seeded the same way.
 *
 * Allocations/s: both sets run at once and are measured in turns, ALLOC_ROUNDS
 * rounds each of MACHINES machines made waiting just before, with CLIENTS
 * clients spread over the set's replicas; the best round of each counts (the
 * machine is shared: load moves between minutes, turns keep it fair). Target
 * >= 0.9x one replica on 2 cores.
 *
 * allocation -> Wait: STREAMS Wait streams on one set at a time (the one
 * replica first, then stopped), every allocation made on the replica that
 * does not hold its stream. Target p99 < 50 ms; the ratio target p99 <= 5x
 * the one-replica p99 with the same STREAMS streams (one broker hop and the
 * other replica's read on top of the same work), as DESIGN §7 judges the
 * one-replica Wait row against one stream.
 */
export async function benchReplicas(): Promise<Comparison[]> {
  const sets: Awaited<ReturnType<typeof prepare>>[] = [];
  try {
    const one = await prepare(1);
    sets.push(one);
    const two = await prepare(2);
    sets.push(two);
    const alloc: (Measured | undefined)[] = [undefined, undefined];
    for (const [k, s] of [one, two].entries()) {
      await insertMachines(s.raw, WARMUP, { waiting: true });
      await allocateAll(s, `warm${k}`, WARMUP);
    }
    for (let round = 0; round < ALLOC_ROUNDS; round++) {
      for (const [k, s] of [one, two].entries()) {
        await insertMachines(s.raw, MACHINES, { waiting: true });
        alloc[k] = better(alloc[k], await allocateAll(s, `m${round}`, MACHINES));
      }
    }
    for (const s of [one, two]) await checkAllocations(s);
    const notifyOne = await notifyAcross(one, one.abort);
    await one.close();
    sets.shift();
    const notifyTwo = await notifyAcross(two, two.abort);
    await checkAllocations(two);
    return [
      {
        what: `machine allocations, ${CLIENTS} clients over 2 replicas (MQTT), ${MACHINES} waiting machines (0 duplicates; best of ${ALLOC_ROUNDS} rounds, in turns); baseline: 1 replica (in-process bus), same seeding`,
        subject: alloc[1]!.m,
        baseline: alloc[0]!.m,
        target: ">= 0.9x one replica (2 cores)",
        ratioTarget: 0.9,
        extra: { serverCpuUsPerAllocation: Math.round(alloc[1]!.serverCpuUsPerCall), oneReplicaServerCpuUsPerAllocation: Math.round(alloc[0]!.serverCpuUsPerCall) },
      },
      {
        what: `allocation response -> its Wait stream has it, ${STREAMS} streams over 2 replicas (MQTT), each allocation made on the other replica; baseline: 1 replica (in-process bus), ${STREAMS} streams`,
        subject: notifyTwo,
        baseline: notifyOne,
        target: "p99 < 50 ms; p99 <= 5x the one-replica p99",
        extra: { streams: STREAMS, rounds: ROUNDS, p99Ratio: Number((notifyTwo.p99Ms / Math.max(notifyOne.p99Ms, 0.001)).toFixed(2)) },
      },
    ];
  } catch (err) {
    for (const s of sets) printOutputs(s.set);
    throw err;
  } finally {
    for (const s of sets) await s.close();
  }
}
