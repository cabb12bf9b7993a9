import { type ChildProcess, spawn } from "node:child_process";
import { setMaxListeners } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import pg from "pg";
import { createTransport } from "../../client/transport.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { freePort } from "../helpers/free-port.js";
import { setUpPartition } from "../helpers/partition-fixture.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import type { TestServer } from "../helpers/server-launch.js";
import type { Comparison, Measurement } from "./harness.js";
import { insertMachines } from "./seed-machines.js";

const STREAMS = Number(process.env.BENCH_WAIT_STREAMS ?? 10_000);
const ROUNDS = 200;
/** Streams per HTTP/2 connection, as many metal-hammers would each hold their own; here a few hundred share one. */
const PER_CONNECTION = 250;

export interface ServerMemory {
  /** V8 heap in use, reserved by V8, and memory outside the heap held by JS objects (Buffers), in KiB. */
  heapUsed: number;
  heapTotal: number;
  external: number;
}

/** The server's memory as its own /metrics reports it. */
export async function serverMemory(url: string): Promise<ServerMemory> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const kib = (name: string) => {
    const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?(?:e\\+\\d+)?)`, "m").exec(text);
    return m ? Number(m[1]) / 1024 : NaN;
  };
  return { heapUsed: kib("nodejs_heap_size_used_bytes"), heapTotal: kib("nodejs_heap_size_total_bytes"), external: kib("nodejs_external_memory_bytes") };
}

/**
 * Full collections until the server's RSS stops falling (within 2%). Right
 * after thousands of streams opened, V8 still holds the pages the set-up
 * garbage needed; an open Wait stream lives for hours, so what it costs is
 * the settled figure. The same procedure runs before and after.
 */
export async function settle(proc: ChildProcess): Promise<number> {
  let last = Infinity;
  for (let round = 0; round < 8; round++) {
    proc.kill("SIGUSR2");
    await new Promise((r) => setTimeout(r, round === 0 ? 1_000 : 5_000));
    const rss = await rssKiB(proc.pid!);
    if (rss > last * 0.98) return rss;
    last = rss;
  }
  return last;
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
}

/** The real server binary in a process of its own, so its memory is measured alone. */
export async function startServer(env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ["--expose-gc", "--import", "tsx", "test/bench/server-with-gc.ts"], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60_000);
    proc.stdout!.on("data", () => {
      const m = /metal-api listening on (http:\/\/[^\s"]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once("exit", (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
  return { proc, url };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

/**
 * Opens `n` Wait streams for fresh waiting machines, then allocates ROUNDS of
 * them by id, one after another, timing from the allocation's response to the
 * moment its stream has the allocation (0 when the stream was first).
 */
async function notifyRounds(raw: pg.Pool, boots: Client<typeof BootService>[], tenant: Client<typeof MachineService>, network: string, n: number, abort: AbortController): Promise<Measurement> {
  const ids = await insertMachines(raw, n);
  const arrived = new Map<string, number>();
  ids.forEach((id, i) => {
    void (async () => {
      try {
        for await (const msg of boots[i % boots.length]!.wait({ partition: "p1", machineId: id }, { signal: abort.signal })) {
          if (msg.allocation) {
            arrived.set(id, performance.now());
            return;
          }
        }
      } catch {
        // aborted at the end of the bench
      }
    })();
  });
  // Every stream is open once its machine is waiting.
  for (;;) {
    const { rows } = await raw.query(`select count(*)::int as n from machines where id = any($1::text[]) and waiting_until > now()`, [ids]);
    if (rows[0].n === n) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const latencies: number[] = [];
  const started = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    const id = ids[Math.floor((round * n) / ROUNDS)]!;
    await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: `n${round}`, networks: [network], machineId: id });
    const answered = performance.now();
    while (!arrived.has(id)) await new Promise((r) => setImmediate(r));
    latencies.push(Math.max(0, arrived.get(id)! - answered));
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { name: `allocation -> Wait stream, ${n} open`, ops: ROUNDS, concurrency: 1, seconds, perSecond: ROUNDS / seconds, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
}

/**
 * The server with 10,000 open Wait streams: how long an allocation takes to
 * reach its waiting hammer, beside the same with a handful of streams, and
 * the server's resident memory per open stream.
 */
export async function benchWaitStreams(): Promise<Comparison[]> {
  const metalDb = await createScratchDatabase("metal_bench_wait");
  const mdDb = await createScratchDatabase("md_bench_wait");
  const dataDir = await mkdtemp(join(tmpdir(), "metal-bench-wait-"));
  const { proc, url } = await startServer({
    METAL_LISTEN: `127.0.0.1:${await freePort()}`,
    METAL_DATA_DIR: dataDir,
    DATABASE_URL: metalDb.url,
    MASTERDATA_DATABASE_URL: mdDb.url,
    LOG_LEVEL: "info",
  });
  const raw = new pg.Pool({ connectionString: metalDb.url, max: 4 });
  const abort = new AbortController();
  // One signal ends every stream of the bench; that many listeners are expected.
  setMaxListeners(0, abort.signal);
  try {
    const adminToken = (await readFile(join(dataDir, "admin-token"), "utf8")).trim();
    const transports = new Map<string, Transport>();
    const server = {
      url,
      adminToken,
      client<S extends DescService>(service: S, token?: string) {
        const key = `c${token}`;
        if (!transports.has(key)) transports.set(key, createTransport({ baseUrl: url, protocol: "connect", binary: true, token }));
        return createClient(service, transports.get(key)!);
      },
      grpcClient<S extends DescService>(service: S, token?: string) {
        return createClient(service, createTransport({ baseUrl: url, protocol: "grpc", token }));
      },
    } as unknown as TestServer;
    const fixture = await setUpPartition(server);
    const tenant = server.client(MachineService, adminToken);
    // 400 allocations need more than the fixture's /24.
    const network = (await server.client(NetworkService, adminToken).create({ project: "pb", partition: "p1", length: { ipv4: 20 } })).network!.id;
    const boots = Array.from({ length: Math.ceil(STREAMS / PER_CONNECTION) }, () => server.grpcClient(BootService, fixture.infraToken));

    const few = await notifyRounds(raw, boots, tenant, network, ROUNDS, abort);
    const before = await settle(proc);
    const memBefore = await serverMemory(url);
    const many = await notifyRounds(raw, boots, tenant, network, STREAMS, abort);
    // Keepalives have flowed on every stream by now, so their buffers are part of the figure.
    await new Promise((r) => setTimeout(r, 6_000));
    const after = await settle(proc);
    const memAfter = await serverMemory(url);
    const added = STREAMS - ROUNDS;
    const perStream = (after - before) / added;
    const per = (k: keyof ServerMemory) => Number(((memAfter[k] - memBefore[k]) / added).toFixed(2));
    return [
      {
        what: `allocation response -> its hammer's open Wait stream has it, ${STREAMS} streams open (baseline: ${ROUNDS} open); server RSS +${((after - before) / 1024).toFixed(0)} MiB = ${perStream.toFixed(1)} KiB per stream (V8 heap used ${per("heapUsed")} KiB, reserved ${per("heapTotal")} KiB, external ${per("external")} KiB)`,
        subject: many,
        baseline: few,
        target: "p99 < 50 ms; < 20 KiB per stream",
        extra: {
          streams: STREAMS,
          rssBeforeKiB: before,
          rssAfterKiB: after,
          kibPerStream: Number(perStream.toFixed(2)),
          heapUsedBeforeKiB: Math.round(memBefore.heapUsed),
          heapUsedAfterKiB: Math.round(memAfter.heapUsed),
          heapKibPerStream: per("heapUsed"),
          heapReservedKibPerStream: per("heapTotal"),
          externalKibPerStream: per("external"),
        },
      },
    ];
  } finally {
    abort.abort();
    await raw.end();
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
    await rm(dataDir, { recursive: true, force: true });
    await metalDb.drop();
    await mdDb.drop();
  }
}
