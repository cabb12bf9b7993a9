import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import pg from "pg";
import { createTransport } from "../../client/transport.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { setUpPartition } from "../helpers/partition-fixture.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import type { TestServer } from "../helpers/server-launch.js";
import type { Comparison, Measurement } from "./harness.js";
import type { ProxyHostOrder, ProxyHostReport } from "./machine-proxy-host.js";
import { freePort } from "./replica-launch.js";
import { insertMachines } from "./seed-machines.js";
import { startHolders } from "./wait-holders.js";
import { type ServerMemory, serverMemory, settle, startServer } from "./wait-streams.js";

/** Waiting machines, each hammer on an HTTP/2 connection of its own to its metal-core (or, on the direct path, to the server). */
const MACHINES = Number(process.env.BENCH_BOUNDARY_MACHINES ?? 10_000);
/** metal-cores (leaf switches), each forwarding its machines' calls on one connection to the server. */
const CORES = Number(process.env.BENCH_BOUNDARY_CORES ?? 100);
/** Child processes hosting the metal-cores' proxies, CORES / PROXY_HOSTS each. */
const PROXY_HOSTS = Number(process.env.BENCH_BOUNDARY_PROXY_HOSTS ?? 2);
/** Child processes holding the hammers' streams (wait-holder.ts): MACHINES / HOLDERS client connections each. */
const HOLDERS = Number(process.env.BENCH_BOUNDARY_HOLDERS ?? 4);
const ROUNDS = Number(process.env.BENCH_BOUNDARY_ROUNDS ?? 200);
/** Rounds before the measured ones, on other machines, not counted (the first allocations run code for the first time). */
const WARMUP_ROUNDS = 10;
/** Rounds slower than this are printed as they happen. */
const SLOW_ROUND_MS = 40;
/** How long one allocation may take to reach its hammer before the bench gives up. */
const DEADLINE_MS = 10_000;
/** Hammers that start at once; the next batch starts when these wait. */
const OPEN_BATCH = Number(process.env.BENCH_BOUNDARY_OPEN_BATCH ?? 250);
/** How long all MACHINES streams may take to open. */
const OPEN_DEADLINE_MS = 300_000;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The bench takes minutes: where it is, on stderr. */
const progress = (what: string) => process.stderr.write(`[partition-boundary ${new Date().toISOString().slice(11, 19)}] ${what}\n`);

/** One metal-api process (server-with-gc.ts: a full GC on SIGUSR2) on scratch databases, with p1 set up. */
interface Server {
  proc: ChildProcess;
  url: string;
  raw: pg.Pool;
  infraToken: string;
  tenant: Client<typeof MachineService>;
  /** A /20 of project pb: more allocations than the fixture's /24 holds. */
  network: string;
  /** Stops it and drops its databases; `failed` prints its output first. */
  stop(failed?: boolean): Promise<void>;
}

async function startBenchServer(leanWait: boolean): Promise<Server> {
  const metalDb = await createScratchDatabase("metal_bench_boundary", { from: "metal" });
  const mdDb = await createScratchDatabase("md_bench_boundary", { from: "masterdata" });
  const dataDir = await mkdtemp(join(tmpdir(), "metal-bench-boundary-"));
  const cleanUp = () => Promise.all([metalDb.drop(), mdDb.drop(), rm(dataDir, { recursive: true, force: true })]);
  let started: Awaited<ReturnType<typeof startServer>>;
  try {
    started = await startServer({
      METAL_LISTEN: `127.0.0.1:${await freePort()}`,
      METAL_CONSOLE_LISTEN: "127.0.0.1:0",
      METAL_DATA_DIR: dataDir,
      DATABASE_URL: metalDb.url,
      MASTERDATA_DATABASE_URL: mdDb.url,
      METAL_LEAN_WAIT: String(leanWait),
      // The direct path: every hammer on a connection of its own, all from 127.0.0.1.
      METAL_MAX_CONNECTIONS_PER_ADDRESS: String(Math.max(5_000, MACHINES + 1_000)),
      METAL_MAX_CONNECTIONS: String(Math.max(20_000, MACHINES + 1_000)),
      LOG_LEVEL: "info",
    });
  } catch (err) {
    await cleanUp();
    throw err;
  }
  const { proc, url } = started;
  // The last of its output, for when the bench fails.
  let output = "";
  const keep = (d: Buffer) => (output = (output + d).slice(-20_000));
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const raw = new pg.Pool({ connectionString: metalDb.url, max: 4 });
  const stop = async (failed?: boolean) => {
    if (failed) process.stderr.write(`--- output of the server (lean Wait path ${leanWait ? "on" : "off"}):\n${output}\n`);
    await raw.end();
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await cleanUp();
  };
  try {
    const adminToken = (await readFile(join(dataDir, "admin-token"), "utf8")).trim();
    const connect = createTransport({ baseUrl: url, protocol: "connect", binary: true, token: adminToken });
    const asTestServer = {
      url,
      adminToken,
      client: <S extends DescService>(service: S, token?: string) => createClient(service, token && token !== adminToken ? createTransport({ baseUrl: url, protocol: "connect", binary: true, token }) : connect),
      grpcClient: <S extends DescService>(service: S, token?: string) => createClient(service, createTransport({ baseUrl: url, protocol: "grpc", token: token ?? adminToken })),
    } as unknown as TestServer;
    const fixture = await setUpPartition(asTestServer);
    const network = (await createClient(NetworkService, connect).create({ project: "pb", partition: "p1", length: { ipv4: 20 } })).network!.id;
    return { proc, url, raw, infraToken: fixture.infraToken, tenant: createClient(MachineService, connect), network, stop };
  } catch (err) {
    await stop(true);
    throw err;
  }
}

/** Wait streams open on the server, as its /metrics counts them. */
async function openWaitStreams(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^metal_open_streams\{class="wait"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

async function processRssKiB(pid: number): Promise<number> {
  return Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"))![1]);
}

/** PROXY_HOSTS machine-proxy-host.ts processes with `count` metal-core proxies in all, each on its own connection to `upstreamUrl`. */
async function startMetalCores(upstreamUrl: string, count: number): Promise<{ endpoints: string[]; implementation: string; rssKiB(): Promise<number>; stop(): Promise<void> }> {
  const procs: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      procs.map((p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = new Promise((r) => p.once("exit", r));
        if (p.connected) p.disconnect();
        else p.kill("SIGTERM");
        return exited;
      }),
    );
  };
  try {
    const reports = await Promise.all(
      Array.from({ length: PROXY_HOSTS }, (_, h) => {
        const proc = spawn(process.execPath, ["--import", "tsx", "test/bench/machine-proxy-host.ts"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
        procs.push(proc);
        const share = Math.floor(count / PROXY_HOSTS) + (h < count % PROXY_HOSTS ? 1 : 0);
        return new Promise<{ endpoints: string[]; implementation: string }>((resolve, reject) => {
          proc.once("message", (report: ProxyHostReport) => ("failed" in report ? reject(new Error(report.failed)) : resolve(report)));
          proc.once("exit", (code) => reject(new Error(`a machine proxy host exited with ${code}`)));
          proc.send({ upstreamUrl, count: share } satisfies ProxyHostOrder);
        });
      }),
    );
    const rssKiB = async () => (await Promise.all(procs.map((p) => processRssKiB(p.pid!)))).reduce((a, b) => a + b, 0);
    return { endpoints: reports.flatMap((r) => r.endpoints), implementation: reports[0]!.implementation, rssKiB, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** `count` hammers waiting, machine i's stream dialled to `endpointOf(i)` on a connection of its own, held by the HOLDERS processes. */
interface Hammers {
  ids: string[];
  /** Resolves when machine `id` has its allocation, with the holder's clock (performance.timeOrigin + now()). */
  arrival(id: string): Promise<number>;
  stop(): Promise<void>;
}

async function startHammers(server: Server, count: number, endpointOf: (i: number) => string): Promise<Hammers> {
  const ids = await insertMachines(server.raw, count);
  const arrived = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  let failed: string | undefined;
  const holders = startHolders(HOLDERS, (report) => {
    if ("failed" in report) failed ??= report.failed;
    else {
      arrived.set(report.arrived, report.at);
      waiters.get(report.arrived)?.(report.at);
    }
  });
  const stop = async () => {
    holders.stop();
    // Every hammer gone means every stream ended at the server (through the proxies, when there are any).
    const until = performance.now() + 60_000;
    while ((await openWaitStreams(server.url)) > 0 && performance.now() < until) await sleep(200);
  };
  // perConnection 1: each hammer dials its own connection, as machines of their own do. In batches:
  // 10,000 connects in the same instant overflow a listener's accept queue (ECONNRESET), where
  // real machines come up over minutes.
  const started = performance.now();
  for (let from = 0; from < count; from += OPEN_BATCH) {
    const batch = ids.slice(from, from + OPEN_BATCH);
    holders.order((h) => ({ token: server.infraToken, perConnection: 1, streams: batch.flatMap((id, k): [string, string][] => ((from + k) % HOLDERS === h ? [[id, endpointOf(from + k)]] : [])) }));
    for (;;) {
      const { rows } = await server.raw.query(`select count(*)::int as n from machines where id = any($1::text[]) and waiting_until > now()`, [batch]);
      if (rows[0].n === batch.length) break;
      if (failed || performance.now() - started > OPEN_DEADLINE_MS) {
        await stop();
        const after = ((performance.now() - started) / 1000).toFixed(1);
        throw new Error(`${from + rows[0].n} of ${count} hammers waiting after ${after} s${failed ? `, when one failed: ${failed}` : ""}`);
      }
      await sleep(100);
    }
  }
  return {
    ids,
    arrival(id) {
      const at = arrived.get(id);
      if (at !== undefined) return Promise.resolve(at);
      let timer: NodeJS.Timeout | undefined;
      return new Promise<number>((resolve, reject) => {
        waiters.set(id, resolve);
        timer = setTimeout(() => reject(new Error(failed ?? `the allocation of ${id} did not reach its hammer within ${DEADLINE_MS} ms`)), DEADLINE_MS);
      }).finally(() => {
        clearTimeout(timer);
        waiters.delete(id);
      });
    },
    stop,
  };
}

/**
 * `rounds` allocations by machine id, one after another (after `warmup`
 * not counted), each timed from the allocation's response to the moment its
 * hammer's process has it (0 when the stream was first).
 */
async function notifyRounds(server: Server, hammers: Hammers, name: string, prefix: string, rounds = ROUNDS, warmup = WARMUP_ROUNDS): Promise<Measurement> {
  const latencies: number[] = [];
  const n = hammers.ids.length;
  let started = performance.now();
  for (let round = -warmup; round < rounds; round++) {
    if (round === 0) started = performance.now();
    const i = round < 0 ? Math.floor((-round * n) / rounds) + 1 : Math.floor((round * n) / rounds);
    const id = hammers.ids[i]!;
    await server.tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: `${prefix}${round}`, networks: [server.network], machineId: id });
    const answered = performance.timeOrigin + performance.now();
    const at = await hammers.arrival(id);
    if (round >= 0) latencies.push(Math.max(0, at - answered));
    // A slow round, with where it happened: stalls are what a p99 of 200 rounds is made of.
    if (at - answered > SLOW_ROUND_MS) progress(`${name}: round ${round} took ${(at - answered).toFixed(0)} ms (machine ${i}, ${new Date().toISOString().slice(11, 23)})`);
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { name, ops: rounds, concurrency: 1, seconds, perSecond: rounds / seconds, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
}

interface MemoryDelta {
  /** Settled RSS growth per waiting machine, and V8 heap used / reserved and external memory per machine, in KiB. */
  rssKib: number;
  heapUsedKib: number;
  heapTotalKib: number;
  externalKib: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
}

const perMachine = (before: number, after: number) => Number(((after - before) / MACHINES).toFixed(2));

/** Settles the server (full GCs until its RSS stops falling) and reads its memory. */
async function settled(server: Server): Promise<{ rss: number; mem: ServerMemory }> {
  const rss = await settle(server.proc);
  return { rss, mem: await serverMemory(server.url) };
}

function delta(before: { rss: number; mem: ServerMemory }, after: { rss: number; mem: ServerMemory }): MemoryDelta {
  return {
    rssKib: perMachine(before.rss, after.rss),
    heapUsedKib: perMachine(before.mem.heapUsed, after.mem.heapUsed),
    heapTotalKib: perMachine(before.mem.heapTotal, after.mem.heapTotal),
    externalKib: perMachine(before.mem.external, after.mem.external),
    rssBeforeKiB: before.rss,
    rssAfterKiB: after.rss,
  };
}

/** Hammers and rounds of the warm-up, so the "before" figure already holds the code and caches of the Wait path. */
const WARMUP_HAMMERS = 200;

/**
 * A freshly started server still holds its start-up's garbage and has not
 * compiled the Wait path yet (a smoke run's settled RSS fell by 57 MB between
 * "before" and "after" without it): WARMUP_HAMMERS hammers straight to it,
 * a few allocations, and gone again before the "before" figure is taken.
 */
async function warmUp(server: Server, label: string): Promise<void> {
  const hammers = await startHammers(server, WARMUP_HAMMERS, () => server.url);
  try {
    await notifyRounds(server, hammers, "warm-up", `${label}-warm-`, 20, 0);
  } finally {
    await hammers.stop();
  }
}

/** Keepalives have flowed on every stream by then, so their buffers are part of the figure (as in wait-streams.ts). */
const KEEPALIVE_SETTLE_MS = 6_000;

/**
 * One server (lean path on or off): MACHINES hammers behind CORES metal-cores,
 * the server's settled memory per waiting machine (the metal-cores'
 * connections included: they are opened after the "before" figure), then the
 * allocation -> hammer rounds through the metal-cores; with `direct`, then the
 * same hammers' streams straight to the server, each on its own connection.
 */
async function measureServer(leanWait: boolean, direct: boolean) {
  const server = await startBenchServer(leanWait);
  const label = leanWait ? "lean" : "connect";
  let failed = true;
  try {
    progress(`server with the ${label} Wait path up; warming up`);
    await warmUp(server, label);
    progress("settling");
    const before = await settled(server);
    const cores = await startMetalCores(server.url, CORES);
    progress(`${CORES} metal-cores (${cores.implementation}) up; opening ${MACHINES} hammers' streams through them`);
    let throughCores: { memory: MemoryDelta; notify: Measurement; implementation: string; coreKibPerMachine: number };
    const coresIdle = await cores.rssKiB();
    try {
      const hammers = await startHammers(server, MACHINES, (i) => cores.endpoints[i % CORES]!);
      try {
        progress("all waiting; settling");
        await sleep(KEEPALIVE_SETTLE_MS);
        const memory = delta(before, await settled(server));
        progress(`${memoryText(memory)} per machine through metal-cores; allocation rounds`);
        const notify = await notifyRounds(server, hammers, `allocation -> hammer through metal-core (${label} Wait path), ${MACHINES} waiting`, `${label}-core-`);
        // The metal-cores' processes are not settled (no full GC on demand): a rough figure of what they hold per machine.
        const coreKibPerMachine = perMachine(coresIdle, await cores.rssKiB());
        throughCores = { memory, notify, implementation: cores.implementation, coreKibPerMachine };
      } finally {
        await hammers.stop();
      }
    } finally {
      await cores.stop();
    }
    if (!direct) {
      failed = false;
      return { throughCores };
    }
    progress("settling before the direct path");
    const beforeDirect = await settled(server);
    progress(`opening ${MACHINES} hammers' streams straight to the server`);
    const hammers = await startHammers(server, MACHINES, () => server.url);
    try {
      progress("all waiting; settling");
      await sleep(KEEPALIVE_SETTLE_MS);
      const memory = delta(beforeDirect, await settled(server));
      progress(`${memoryText(memory)} per machine direct; allocation rounds`);
      const notify = await notifyRounds(server, hammers, `allocation -> hammer direct (${label} Wait path), ${MACHINES} waiting`, `${label}-direct-`);
      failed = false;
      return { throughCores, direct: { memory, notify } };
    } finally {
      await hammers.stop();
    }
  } finally {
    await server.stop(failed);
  }
}

const memoryText = (m: MemoryDelta) => `${m.rssKib} KiB RSS (V8 heap used ${m.heapUsedKib}, reserved ${m.heapTotalKib}, external ${m.externalKib} KiB)`;
const memoryExtra = (prefix: string, m: MemoryDelta): Record<string, number> => ({
  [`${prefix}KibPerMachine`]: m.rssKib,
  [`${prefix}HeapUsedKibPerMachine`]: m.heapUsedKib,
  [`${prefix}HeapReservedKibPerMachine`]: m.heapTotalKib,
  [`${prefix}ExternalKibPerMachine`]: m.externalKib,
  [`${prefix}RssBeforeKiB`]: m.rssBeforeKiB,
  [`${prefix}RssAfterKiB`]: m.rssAfterKiB,
});

/**
 * Issue 16's rows: MACHINES hammers, each on its own HTTP/2 connection to
 * one of CORES metal-cores, whose machine proxies (child processes) forward
 * every call on one connection each to the server (a process of its own,
 * started with a full GC on SIGUSR2 so its memory can be settled).
 *
 * Row 1, the decision on the lean Wait path: the server's settled memory per
 * waiting machine with the lean path on and with METAL_LEAN_WAIT=false
 * (Connect's own handler), each on a server of its own, one after the other
 * in the same run; the rows' latencies are the allocation -> hammer rounds on
 * each. Row 2: allocation -> hammer notified through metal-core (lean path on,
 * the default), beside the same hammers' streams straight to the server.
 *
 * The hammers authenticate with the partition's infra token (the server still
 * accepts it on Wait); metal-core forwards whatever Authorization the hammer
 * sends, so a machine credential would travel the same way.
 */
export async function benchPartitionBoundary(): Promise<Comparison[]> {
  const lean = await measureServer(true, true);
  const connect = await measureServer(false, false);
  const leanMem = lean.throughCores.memory;
  const connectMem = connect.throughCores.memory;
  const saving = 1 - leanMem.rssKib / connectMem.rssKib;
  const heapSaving = 1 - leanMem.heapUsedKib / connectMem.heapUsedKib;
  const directMem = lean.direct!.memory;
  const setting = `${MACHINES} hammers (own connections, ${HOLDERS} holder processes, infra token) -> ${CORES} metal-cores (${lean.throughCores.implementation}, ${PROXY_HOSTS} processes) -> server`;
  return [
    {
      what: `server memory per waiting machine, settled, ${setting}: lean Wait path ${memoryText(leanMem)} vs METAL_LEAN_WAIT=false (Connect's handler) ${memoryText(connectMem)}: lean saves ${(saving * 100).toFixed(1)} % of RSS, ${(heapSaving * 100).toFixed(1)} % of heap (the metal-cores' processes: ~${lean.throughCores.coreKibPerMachine.toFixed(0)} KiB RSS per machine, unsettled); latencies: allocation -> hammer, lean vs Connect`,
      subject: lean.throughCores.notify,
      baseline: connect.throughCores.notify,
      target: "< 20 KiB per waiting machine incl. the connections; keep the lean path only if it saves >= 30 %",
      extra: {
        machines: MACHINES,
        metalCores: CORES,
        ...memoryExtra("lean", leanMem),
        ...memoryExtra("connect", connectMem),
        leanRssSavingPercent: Number((saving * 100).toFixed(1)),
        leanHeapSavingPercent: Number((heapSaving * 100).toFixed(1)),
        metalCoreProcessesRssKibPerMachine: lean.throughCores.coreKibPerMachine,
      },
    },
    {
      what: `allocation response -> its hammer notified through metal-core, ${setting} (lean path); baseline: the same ${MACHINES} hammers straight to the server, each on its own connection (server memory per machine that way: ${memoryText(directMem)})`,
      subject: lean.throughCores.notify,
      baseline: lean.direct!.notify,
      target: "p99 < 50 ms",
      extra: { machines: MACHINES, metalCores: CORES, rounds: ROUNDS, ...memoryExtra("direct", directMem) },
    },
  ];
}
