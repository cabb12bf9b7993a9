import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import type { Comparison, Measurement } from "./harness.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const API_BIN = join(REPO, "bin", "metal-api.js");
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 3);
const LAB_MACHINES = 8;
/** Far above the targets; only a hung start meets it. */
const GIVE_UP_MS = 180_000;

/** Every address on port 0: runs never collide with each other or with a lab someone left running. */
const PORTS = { METAL_LISTEN: "127.0.0.1:0", METAL_CONSOLE_LISTEN: "127.0.0.1:0", METAL_LAB_LISTEN: "127.0.0.1:0" };

/** Starts a process and resolves when `ready` matches a line of its stdout or stderr; the time counts from the spawn. */
function startUntil(cmd: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ child: ChildProcess; ms: number; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    // Its own process group: npm start runs the lab in a child of its own, and both must stop.
    const child = spawn(cmd, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const lines: string[] = [];
    const timer = setTimeout(() => {
      stop(child);
      reject(new Error(`${cmd} ${args.join(" ")}: not ready after ${GIVE_UP_MS} ms:\n${lines.slice(-20).join("\n")}`));
    }, GIVE_UP_MS);
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        lines.push(line);
        if (ready.test(line)) {
          clearTimeout(timer);
          resolve({ child, ms: performance.now() - started, lines });
        }
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}:\n${lines.slice(-20).join("\n")}`));
    });
  });
}

/** SIGTERM to the process group; resolves once the process has exited. */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  // The start's own listener (which takes an exit for a failure) goes: this exit is asked for.
  child.removeAllListeners("exit");
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    process.kill(-child.pid!, "SIGTERM");
  } catch {
    child.kill("SIGTERM");
  }
  return exited;
}

function summary(name: string, times: number[]): Measurement {
  const sorted = [...times].sort((a, b) => a - b);
  const seconds = times.reduce((a, b) => a + b, 0) / 1000;
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  return { name, ops: times.length, concurrency: 1, seconds, perSecond: times.length / seconds, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}

/** The last line metal-api logs on start-up: the API listens and the SSH console too. */
const API_READY = /metal-console \(SSH\) listening/;

/** One start of metal-api on `dataDir`, ready to stopped; returns the time to ready. */
async function apiStart(dataDir: string, home: string): Promise<number> {
  const env = { PATH: process.env.PATH, HOME: home, METAL_DATA_DIR: dataDir, ...PORTS };
  const { child, ms } = await startUntil(process.execPath, [API_BIN], env, API_READY);
  await stop(child);
  return ms;
}

/** `node -e 0`: the least any Node process costs to start here, now. */
async function nodeBaseline(runs: number): Promise<Measurement> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const { child, ms } = await startUntil(process.execPath, ["-e", "console.log('up')"], { PATH: process.env.PATH }, /^up$/);
    await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once("exit", () => r())));
    times.push(ms);
  }
  return summary("node -e 0", times);
}

/**
 * DESIGN §7 "metal-api ready on the embedded database: <= 3 s on a second
 * start, <= 8 s on the first" (issue 14). A real metal-api process
 * (bin/metal-api.js, the bundle) on a new data directory, timed from the
 * spawn to its last start-up line (API and SSH console listening), then
 * stopped and started again on the same directory. One unmeasured start
 * first: it builds the bundle when the sources changed and, on a machine
 * that never ran one, the database templates (node_modules/.cache), as any
 * installation's first use does once. Baseline: `node -e 0` in the same run.
 */
export async function benchStartup(): Promise<Comparison[]> {
  const home = await mkdtemp(join(tmpdir(), "metal-startup-bench-"));
  try {
    await apiStart(join(home, "warm-up"), home);
    const first: number[] = [];
    const second: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const dataDir = join(home, `run-${i}`);
      first.push(await apiStart(dataDir, home));
      second.push(await apiStart(dataDir, home));
    }
    const baseline = await nodeBaseline(RUNS);
    const firstM = summary("metal-api first start (new data directory)", first);
    const secondM = summary("metal-api second start (same data directory)", second);
    console.log(
      `metal-api start-up, embedded: first ${first.map((t) => (t / 1000).toFixed(2)).join(", ")} s; second ${second.map((t) => (t / 1000).toFixed(2)).join(", ")} s; node -e 0 p50 ${baseline.p50Ms.toFixed(0)} ms`,
    );
    return [
      { what: `metal-api ready, embedded, first start (new data directory; ${RUNS} runs; baseline node -e 0)`, subject: firstM, baseline, target: "<= 8 s", extra: { p50Seconds: firstM.p50Ms / 1000 } },
      { what: `metal-api ready, embedded, second start (${RUNS} runs; baseline node -e 0)`, subject: secondM, baseline, target: "<= 3 s", extra: { p50Seconds: secondM.p50Ms / 1000 } },
    ];
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/**
 * Issue 14: "the lab's 8 machines Waiting <= 10 s after a first `npm start`".
 * `npm start` on a new data directory; the time runs from the spawn to the
 * last of the 8 machines' Waiting events (server event times, read through
 * the API once the lab says all are ready, so the lab's own once-a-second
 * progress poll adds nothing). Baseline: metal-api's first start in the
 * same run, the control plane the lab starts before its partition.
 */
export async function benchLabStart(): Promise<Comparison[]> {
  const home = await mkdtemp(join(tmpdir(), "metal-labstart-bench-"));
  try {
    const env = { PATH: process.env.PATH, HOME: home, LOG_FORMAT: "json", METAL_LAB_MACHINES: String(LAB_MACHINES), ...PORTS };
    // Unmeasured: builds the lab's bundle when the sources changed.
    const warm = await startUntil("npm", ["start", "--silent"], { ...env, METAL_DATA_DIR: join(home, "warm-up") }, /machines ready/);
    await stop(warm.child);
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const dataDir = join(home, `run-${i}`);
      const spawnedAt = Date.now();
      const { child, lines } = await startUntil("npm", ["start", "--silent"], { ...env, METAL_DATA_DIR: dataDir }, /machines ready/);
      try {
        const apiUrl = lines.map((l) => /metal-lab is up: API (\S+),/.exec(l)?.[1]).find((u) => u !== undefined);
        if (!apiUrl) throw new Error("the lab did not say where its API is");
        const token = (await readFile(join(dataDir, "admin-token"), "utf8")).trim();
        const admin = createClient(AdminMachineService, createTransport({ baseUrl: apiUrl, protocol: "connect", binary: true, token }));
        const { machines } = await admin.list({ partition: "lab", paging: { limit: 1000, pageToken: "" } });
        const waitingAt = machines.map((m) => {
          const last = m.events?.log[0];
          if (last?.type !== T.WAITING || !last.time) throw new Error(`machine ${m.id} is not Waiting`);
          return timestampMs(last.time);
        });
        if (waitingAt.length !== LAB_MACHINES) throw new Error(`${waitingAt.length} machines, expected ${LAB_MACHINES}`);
        times.push(Math.max(...waitingAt) - spawnedAt);
      } finally {
        await stop(child);
      }
    }
    const apiFirst: number[] = [];
    for (let i = 0; i < RUNS; i++) apiFirst.push(await apiStart(join(home, `api-${i}`), home));
    const subject = summary(`npm start -> ${LAB_MACHINES} machines Waiting (new data directory)`, times);
    const baseline = summary("metal-api first start (new data directory)", apiFirst);
    console.log(
      `lab start: ${LAB_MACHINES} machines Waiting ${times.map((t) => (t / 1000).toFixed(2)).join(", ")} s after npm start; metal-api first start ${apiFirst.map((t) => (t / 1000).toFixed(2)).join(", ")} s`,
    );
    return [
      {
        what: `lab: npm start on a new data directory -> ${LAB_MACHINES} machines Waiting (${RUNS} runs; baseline metal-api's first start)`,
        subject,
        baseline,
        target: "<= 10 s",
        extra: { p50Seconds: subject.p50Ms / 1000 },
      },
    ];
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}
