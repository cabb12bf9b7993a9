import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { S1_HARDWARE_JSON, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer } from "../helpers/server-launch.js";
import type { Comparison, Measurement } from "./harness.js";

const MACHINES = Number(process.env.BENCH_METALCTL_MACHINES ?? 1000);
const RUNS = Number(process.env.BENCH_METALCTL_RUNS ?? 20);
const BIN = fileURLToPath(new URL("../../bin/metalctl.js", import.meta.url));

/** Runs a process to its end; resolves to its wall time in ms and its stdout. */
function timed(args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = performance.now() - started;
      if (code !== 0) reject(new Error(`${args.join(" ")} exited with ${code}: ${stderr}`));
      else resolve({ ms, stdout });
    });
  });
}

async function series(name: string, runs: number, args: string[], env: NodeJS.ProcessEnv, check?: (stdout: string) => void): Promise<Measurement> {
  // Two unmeasured runs: tsx's transform cache and the OS file cache are warm afterwards, as on any second use.
  for (let i = 0; i < 2; i++) check?.((await timed(args, env)).stdout);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push((await timed(args, env)).ms);
  times.sort((a, b) => a - b);
  const seconds = times.reduce((a, b) => a + b, 0) / 1000;
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!;
  return { name, ops: runs, concurrency: 1, seconds, perSecond: runs / seconds, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}

/**
 * Wall time of `metalctl machine list` as a user sees it: a real process
 * (node + tsx + oclif + the generated client), against 1,000 machines written
 * directly into the database, half of them allocated with a short event log.
 * Baseline: starting `node -e 0`, the least any Node CLI can cost.
 */
export async function benchMetalctl(): Promise<Comparison[]> {
  const { server, stop } = await launchServer();
  const home = await mkdtemp(join(tmpdir(), "metalctl-bench-"));
  try {
    await setUpPartition(server);
    const ids = Array.from({ length: MACHINES }, () => randomUUID());
    const now = Date.now();
    const events = JSON.stringify(
      ["PXE Booting", "Preparing", "Registering", "Waiting", "Installing", "Booting New Kernel", "Phoned Home"]
        .reverse()
        .map((type, i) => ({ type, message: "", time: new Date(now - i * 60_000).toISOString() })),
    );
    const allocation = (i: number) =>
      JSON.stringify({
        uuid: randomUUID(),
        project: "pb",
        name: `m${i}`,
        description: "",
        hostname: `host-${i}`,
        role: "machine",
        image: "debian-12.0.20250101",
        filesystemLayout: "s1-default",
        sshKeys: [],
        userData: "",
        asn: 4200000000 + i,
        networks: [{ network: "pb-net", ips: [`10.1.${i >> 8}.${i & 255}`], vrf: 30, primary: true }],
        createdAt: new Date(now - 86_400_000).toISOString(),
        createdBy: "bench",
        succeeded: true,
      });
    const rows = ids.map((id, i) => ({ id, rack: i % 2 ? "r1" : "r2", allocation: i % 2 ? allocation(i) : null }));
    await server.app.db.execute(sql`
      insert into machines (id, partition_id, size_id, rack_id, hardware, allocation, project)
      select r->>'id', 'p1', 's1', r->>'rack', ${S1_HARDWARE_JSON}::jsonb, (r->>'allocation')::jsonb, (r->>'allocation')::jsonb->>'project'
      from jsonb_array_elements(${JSON.stringify(rows)}::jsonb) r`);
    await server.app.db.execute(sql`
      insert into machine_events (machine_id, liveliness, events, last_event_time)
      select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb), 'Alive', ${events}::jsonb, now()`);

    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: home, METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken };
    const listed = (stdout: string) => {
      const lines = stdout.trimEnd().split("\n").length;
      if (lines < MACHINES + 1) throw new Error(`metalctl machine list printed ${lines} lines, expected ${MACHINES + 1} or more`);
    };
    const table = await series("metalctl machine list", RUNS, [BIN, "machine", "list"], env, listed);
    const json = await series("metalctl machine list -o json", RUNS, [BIN, "machine", "list", "-o", "json"], env);
    const version = await series("metalctl version (one tiny RPC)", RUNS, [BIN, "version"], env);
    const baseline = await series("node -e 0", RUNS, ["-e", "0"], env);
    return [
      { what: `metalctl machine list, ${MACHINES} machines, wall time of a real process (${RUNS} runs; baseline node -e 0)`, subject: table, baseline, target: "< 400 ms wall" },
      { what: `metalctl machine list -o json, ${MACHINES} machines`, subject: json, baseline },
      { what: "metalctl version: start-up plus one small RPC", subject: version, baseline },
    ];
  } finally {
    await rm(home, { recursive: true, force: true });
    await stop();
  }
}
