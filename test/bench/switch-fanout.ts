import { fork } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { createInProcessBus, switchTopic } from "../../server/bus/fanout.js";
import { launchServer } from "../helpers/server-launch.js";
import type { Comparison, Measurement } from "./harness.js";

const SWITCHES = 100;
const ROUNDS = 5;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

function measurement(name: string, latencies: number[], seconds: number): Measurement {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { name, ops: sorted.length, concurrency: SWITCHES, seconds, perSecond: sorted.length / seconds, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

/**
 * 100 switches run the real metal-core on simulated switches, in a process
 * of their own (test/bench/fanout-switches.ts: real switches, and whoever
 * changes their config, are other machines; here they share the second
 * core). Every round changes all their desired configs at once (each
 * registers again with one port more, over gRPC like metal-core) and times
 * from each change's commit (its bus publish) to that switch having
 * rendered, validated, swapped and reloaded its files (wall clock across the
 * two processes). Baseline: the same 100 parallel Register calls changing
 * nothing, from request to response.
 */
export async function benchSwitchFanout(): Promise<Comparison[]> {
  const published = new Map<string, number>();
  const inner = createInProcessBus();
  const { server, stop } = await launchServer({
    bus: {
      ...inner,
      publish(topic) {
        published.set(topic, performance.timeOrigin + performance.now());
        inner.publish(topic);
      },
    },
  });
  const root = await mkdtemp(join(tmpdir(), "metal-bench-fanout-"));
  const ids = Array.from({ length: SWITCHES }, (_, i) => `leaf${String(i).padStart(3, "0")}`);
  /** Per switch: the wall-clock times of its changed syncs, and who waits for the next one. */
  const synced = new Map<string, { times: number[]; waiter?: (at: number) => void }>(ids.map((id) => [id, { times: [] }]));
  let switches: ReturnType<typeof fork> | undefined;
  let changer: ReturnType<typeof fork> | undefined;
  try {
    await server.client(AdminPartitions, server.adminToken).create({ id: "p1" });
    const token = (await server.client(AdminTokens, server.adminToken).create({ subject: "p1", roles: { infraPartition: "p1" } })).secret;
    const side = (role: string) =>
      fork("test/bench/fanout-switches.ts", [], {
        execArgv: ["--import", "tsx"],
        env: { ...process.env, FANOUT_ROLE: role, FANOUT_SWITCHES: String(SWITCHES), FANOUT_ROOT: root, FANOUT_URL: server.url, FANOUT_TOKEN: token },
      });
    switches = side("switches");
    changer = side("changer");
    let registered: ((latencies: number[]) => void) | undefined;
    changer.on("message", (m: { registered: number[] }) => registered?.(m.registered));
    switches.on("message", (m: { id: string; at: number }) => {
      const s = synced.get(m.id)!;
      s.times.push(m.at);
      const w = s.waiter;
      s.waiter = undefined;
      w?.(m.at);
    });
    const nextSync = (id: string) => new Promise<number>((resolve) => (synced.get(id)!.waiter = resolve));
    /** Every switch registers again with `ports` ports, from the switches' process; each call's latency. */
    const registerAll = (ports: number) =>
      new Promise<number[]>((resolve) => {
        registered = resolve;
        changer!.send({ register: ports });
      });
    // Every switch has applied its first config.
    while (![...synced.values()].every((s) => s.times.length > 0)) await new Promise((r) => setTimeout(r, 20));

    const fanout: number[] = [];
    const rpc: number[] = [];
    let fanoutSeconds = 0;
    let rpcSeconds = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const ports = 5 + round;
      const started = performance.now();
      const applied = ids.map((id) => nextSync(id));
      await registerAll(ports);
      const at = await Promise.all(applied);
      ids.forEach((id, i) => fanout.push(at[i]! - published.get(switchTopic(id))!));
      fanoutSeconds += (performance.now() - started) / 1000;
      // The baseline: the same calls, changing nothing (same ports again), so no switch has work to do.
      const t0 = performance.now();
      rpc.push(...(await registerAll(ports)));
      rpcSeconds += (performance.now() - t0) / 1000;
    }
    return [
      {
        what: `switch config change -> applied on all ${SWITCHES} switches (${ROUNDS} rounds; baseline: the same Register calls alone)`,
        subject: measurement("config change -> switch synced", fanout, fanoutSeconds),
        baseline: measurement("Register RPC", rpc, rpcSeconds),
        target: "p99 < 200 ms for 100 switches",
      },
    ];
  } finally {
    await Promise.all(
      [switches, changer].map(async (p) => {
        if (!p) return;
        const exited = new Promise((r) => p.once("exit", r));
        p.send("stop");
        await exited;
      }),
    );
    await stop();
    await rm(root, { recursive: true, force: true });
  }
}
