import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import pg from "pg";
import { createTransport } from "../../client/transport.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import { type Comparison, type Measurement, measure } from "./harness.js";

const PARTITIONS = 100;
/** Rounds per server and row, alternating real and bare; the best of each counts (the machine is shared and noisy). */
const ROUNDS = Number(process.env.BENCH_UNARY_ROUNDS ?? 2);
/** Extra node flags for both servers, e.g. "--cpu-prof --cpu-prof-dir=prof" to profile them. */
const SERVER_NODE_ARGS = (process.env.BENCH_UNARY_SERVER_NODE_ARGS ?? "").split(" ").filter(Boolean);
/** Calls per measurement with 1 client (16 clients make 4 times as many). */
const OPS = Number(process.env.BENCH_UNARY_OPS ?? 2000);
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system) a process has used so far, in microseconds; rates drift on a shared machine, this does much less. */
async function cpuMicros(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_SECOND;
}

/** A measurement, and how much CPU the serving process spent per call during it. */
async function measureServer(pid: number, name: string, ops: number, concurrency: number, fn: (i: number) => Promise<unknown>) {
  const before = await cpuMicros(pid);
  const m = await measure(name, ops, concurrency, fn);
  return { m, cpuUsPerCall: ((await cpuMicros(pid)) - before) / ops };
}

interface Started {
  proc: ChildProcess;
  /** The first match of `ready` in its output. */
  match: RegExpExecArray;
  /** The last 20 KB of its output (printed when the bench fails). */
  output(): string;
}

/** A child process started with tsx, once its output matches `ready`. */
async function startProcess(args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<Started> {
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stderr!.on("data", (d) => (out += d));
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")} did not start:\n${out}`)), 60_000);
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    proc.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}:\n${out}`)));
  });
  // Keep the tail of its output, and never let a full pipe block it.
  const keepTail = (d: Buffer) => (out = (out + d).slice(-20_000));
  proc.stdout!.removeAllListeners("data").on("data", keepTail);
  proc.stderr!.removeAllListeners("data").on("data", keepTail);
  return { proc, match, output: () => out };
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  proc.kill("SIGTERM");
  await exited;
}

/**
 * The same client code for both servers: Connect JSON over HTTP/1.1 (JSON said
 * explicitly, as the label names it), and gRPC over h2c.
 */
function clientsOf(connectUrl: string, grpcUrl: string, token: string) {
  return {
    "Connect JSON/HTTP1.1": createClient(PartitionService, createTransport({ baseUrl: connectUrl, protocol: "connect", binary: false, token })),
    "gRPC/h2c": createClient(PartitionService, createTransport({ baseUrl: grpcUrl, protocol: "grpc", token })),
  };
}

type Measured = { m: Measurement; cpuUsPerCall: number };
const better = (a: Measured | undefined, b: Measured) => (a && a.m.perSecond >= b.m.perSecond ? a : b);

/**
 * A unary read (PartitionService.Get) over Connect JSON and gRPC, 1 and 16
 * clients. The real server (server/main.ts, production settings) and a bare
 * connectNodeAdapter server doing the same SELECT through pg
 * (bare-partition-server.ts) each run in a process of their own, on the same
 * database, driven by the same client code from this process: the ratio is
 * what the whole stack (listener, early checks, interceptors, drizzle,
 * conversion, metrics) costs. The raw pg rate of the same SELECT is kept in
 * `extra` for reference, with the CPU time each server process spent per call
 * (steadier than rates when the machine is shared).
 */
export async function benchUnary(): Promise<Comparison[]> {
  const metalDb = await createScratchDatabase("metal_bench");
  const mdDb = await createScratchDatabase("md_bench");
  const dataDir = await mkdtemp(join(tmpdir(), "metal-bench-"));
  const started: Started[] = [];
  const raw = new pg.Pool({ connectionString: metalDb.url, max: 16 });
  try {
    const real = await startProcess(
      [...SERVER_NODE_ARGS, "--import", "tsx", "server/main.ts"],
      {
        METAL_LISTEN: "127.0.0.1:0",
        METAL_CONSOLE_LISTEN: "127.0.0.1:0",
        METAL_DATA_DIR: dataDir,
        DATABASE_URL: metalDb.url,
        MASTERDATA_DATABASE_URL: mdDb.url,
        LOG_LEVEL: "info",
      },
      /metal-api listening on (http:\/\/[^\s"]+)/,
    );
    started.push(real);
    const realUrl = real.match[1]!;
    const token = (await readFile(join(dataDir, "admin-token"), "utf8")).trim();
    const bare = await startProcess([...SERVER_NODE_ARGS, "--import", "tsx", "test/bench/bare-partition-server.ts"], { DATABASE_URL: metalDb.url }, /^(\{.*\})\n/m);
    started.push(bare);
    const bareUrls = JSON.parse(bare.match[1]!) as { http1: string; h2c: string };

    const admin = createClient(AdminPartitionService, createTransport({ baseUrl: realUrl, protocol: "connect", binary: true, token }));
    for (let i = 0; i < PARTITIONS; i++) await admin.create({ id: `bench-${i}`, name: `bench ${i}`, dnsServers: ["10.0.0.53"], labels: { rack: `r${i % 4}` } });
    const realClients = clientsOf(realUrl, realUrl, token);
    const bareClients = clientsOf(bareUrls.http1, bareUrls.h2c, token);
    const rawGet = (i: number) => raw.query("select * from partitions where id = $1", [`bench-${i % PARTITIONS}`]);

    const comparisons: Comparison[] = [];
    for (const label of ["Connect JSON/HTTP1.1", "gRPC/h2c"] as const) {
      for (const concurrency of [1, 16]) {
        const n = concurrency === 1 ? OPS : 4 * OPS;
        const get = (client: (typeof realClients)[typeof label]) => (i: number) => client.get({ id: `bench-${i % PARTITIONS}` });
        await measure("warmup", 500, concurrency, get(realClients[label]));
        await measure("warmup", 500, concurrency, get(bareClients[label]));
        let subject: Measured | undefined;
        let baseline: Measured | undefined;
        for (let round = 0; round < ROUNDS; round++) {
          subject = better(subject, await measureServer(real.proc.pid!, `PartitionService.Get ${label}`, n, concurrency, get(realClients[label])));
          baseline = better(baseline, await measureServer(bare.proc.pid!, `bare connectNodeAdapter + pg, ${label}`, n, concurrency, get(bareClients[label])));
        }
        const rawPg = await measure("raw pg SELECT by id", n, concurrency, rawGet);
        comparisons.push({
          what: `partition Get, ${label}, ${concurrency} client(s), vs a bare connect-node server`,
          subject: subject!.m,
          baseline: baseline!.m,
          target: ">= 0.8",
          extra: {
            rawPgOpsPerSecond: Math.round(rawPg.perSecond),
            serverCpuUsPerCall: Math.round(subject!.cpuUsPerCall),
            bareServerCpuUsPerCall: Math.round(baseline!.cpuUsPerCall),
          },
        });
      }
    }
    return comparisons;
  } catch (err) {
    for (const { proc, output } of started) process.stderr.write(`--- output of ${proc.spawnargs.at(-1)}:\n${output()}\n`);
    throw err;
  } finally {
    await raw.end();
    await Promise.all(started.map((s) => stopProcess(s.proc)));
    await Promise.all([metalDb.drop(), mdDb.drop(), rm(dataDir, { recursive: true, force: true })]);
  }
}
