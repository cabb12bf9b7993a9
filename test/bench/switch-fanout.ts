import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { MetalCore } from "../../edge/core/metal-core.js";
import { SimSwitch } from "../../edge/sim/switch.js";
import { createInProcessBus, switchTopic } from "../../server/bus/fanout.js";
import { launchServer } from "../helpers/server-launch.js";
import type { Comparison, Measurement } from "./harness.js";

const SWITCHES = 100;
const ROUNDS = 5;
const rackOf = (i: number) => `r${Math.floor(i / 2)}`;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

function measurement(name: string, latencies: number[], seconds: number): Measurement {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { name, ops: sorted.length, concurrency: SWITCHES, seconds, perSecond: sorted.length / seconds, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

/**
 * 100 switches run the real metal-core on simulated switches; every round
 * changes all their desired configs at once (a new port each) and times from
 * each change's commit (its bus publish) to that switch having rendered,
 * validated, swapped and reloaded its files. Baseline: the same 100 parallel
 * Register calls alone, from request to response.
 */
export async function benchSwitchFanout(): Promise<Comparison[]> {
  const published = new Map<string, number>();
  const inner = createInProcessBus();
  const { server, stop } = await launchServer({
    bus: {
      publish(topic) {
        published.set(topic, performance.now());
        inner.publish(topic);
      },
      subscribe: inner.subscribe,
    },
  });
  const root = await mkdtemp(join(tmpdir(), "metal-bench-fanout-"));
  const cores: { id: string; core: MetalCore; i: number }[] = [];
  try {
    await server.client(AdminPartitions, server.adminToken).create({ id: "p1" });
    const token = (await server.client(AdminTokens, server.adminToken).create({ subject: "p1", roles: { infraPartition: "p1" } })).secret;
    for (let i = 0; i < SWITCHES; i++) {
      const id = `leaf${String(i).padStart(3, "0")}`;
      // FRR's parser is a process per check; the fan-out is measured, not 100 FRR start-ups.
      const sim = new SimSwitch({ id, root: join(root, id), frontPorts: 4, frrCheck: false });
      const core = new MetalCore({ url: server.url, token, partition: "p1", rack: rackOf(i), os: sim, timing: { heartbeatMs: 600_000, backoffInitialMs: 100 } });
      core.start();
      cores.push({ id, core, i });
    }
    while (!cores.every((c) => c.core.lastSync?.error === "")) await new Promise((r) => setTimeout(r, 20));
    const client = server.client(SwitchService, token);
    const register = (id: string, i: number, ports: number) =>
      client.register({ partition: "p1", id, rack: rackOf(i), nics: Array.from({ length: ports }, (_, n) => ({ name: `swp${n + 1}` })) });

    const fanout: number[] = [];
    const rpc: number[] = [];
    let fanoutSeconds = 0;
    let rpcSeconds = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const ports = 5 + round;
      const started = performance.now();
      await Promise.all(
        cores.map(async ({ id, core, i }) => {
          const synced = new Promise<number>((resolve) => {
            const off = core.onSync((s) => {
              if (s.changed && s.error === "") {
                off();
                resolve(performance.now());
              }
            });
          });
          await register(id, i, ports);
          fanout.push((await synced) - published.get(switchTopic(id))!);
        }),
      );
      fanoutSeconds += (performance.now() - started) / 1000;
      // The baseline: the same calls, changing nothing (same ports again), so no switch has work to do.
      const t0 = performance.now();
      await Promise.all(
        cores.map(async ({ id, i }) => {
          const t = performance.now();
          await register(id, i, ports);
          rpc.push(performance.now() - t);
        }),
      );
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
    await Promise.all(cores.map((c) => c.core.stop()));
    await stop();
    await rm(root, { recursive: true, force: true });
  }
}
