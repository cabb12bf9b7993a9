import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type EmbeddedBrokerLab, startEmbeddedBrokerLab } from "../helpers/lab-replicas.js";
import { type Exposition, samplesOf, sampleValue, scrape } from "../helpers/prometheus-text.js";
import { scaled } from "../helpers/timeouts.js";

// docs/metrics.md with two metal-api processes: the cluster-wide gauges read the same on both replicas, the
// per-replica gauges carry each replica's id and add up to the partition's, the counters add up over replicas.
let t: EmbeddedBrokerLab;
const ps = { partition: LAB.partition, size: LAB.size };

beforeAll(async () => {
  t = await startEmbeddedBrokerLab({ machines: 1, replicas: 2 });
});

afterAll(async () => {
  await t?.dispose();
});

const both = () => Promise.all(t.lab.replicas.map((r) => scrape(r.url)));
const sum = (scrapes: Exposition[], name: string, labels: Record<string, string> = {}) => scrapes.flatMap((e) => samplesOf(e, name, labels)).reduce((a, s) => a + s.value, 0);

describe("business metrics of two replicas", () => {
  it("agree on the cluster-wide gauges; the per-replica ones name their replica and add up", async () => {
    const scrapes = await eventually(
      "the machine to be allocatable, its metal-hammer and both daemons connected",
      async () => {
        const s = await both();
        const ready =
          s.every((e) => sampleValue(e, "metal_machines_allocatable", ps) === 1) &&
          sum(s, "metal_wait_streams_open") === 1 &&
          sum(s, "metal_daemon_sessions", { kind: "switch", partition: LAB.partition }) === 2 &&
          sum(s, "metal_daemon_sessions", { kind: "bmc", partition: LAB.partition }) === 1;
        return ready ? s : undefined;
      },
      scaled(60_000),
    );
    for (const e of scrapes) {
      expect(sampleValue(e, "metal_machines", { ...ps, state: "available", allocation: "free" })).toBe(1);
      expect(sampleValue(e, "metal_machines_waiting", ps)).toBe(1);
      // The cluster-wide families carry no replica label; the per-replica ones exactly one value: their own.
      expect(samplesOf(e, "metal_machines").every((s) => s.labels.replica === undefined)).toBe(true);
      expect(samplesOf(e, "metal_wait_streams_open")).toHaveLength(1);
    }
    const ids = scrapes.map((e) => samplesOf(e, "metal_wait_streams_open")[0]!.labels.replica);
    expect(new Set(ids).size).toBe(2);
    for (const [i, e] of scrapes.entries()) for (const s of samplesOf(e, "metal_daemon_sessions")) expect(s.labels.replica).toBe(ids[i]);
  });

  it("count an allocation once over the replicas, and both report it allocated", async () => {
    await t.admin(MachineService).create({ project: LAB.project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname: "m1", networks: [t.lab.projectNetwork] });
    const scrapes = await eventually(
      "both replicas to report the allocation",
      async () => {
        const s = await both();
        return s.every((e) => sampleValue(e, "metal_machines", { ...ps, state: "available", allocation: "allocated" }) === 1) ? s : undefined;
      },
      scaled(30_000),
    );
    expect(sum(scrapes, "metal_machine_allocations_total", { ...ps, outcome: "ok" })).toBe(1);
    for (const e of scrapes) expect(sampleValue(e, "metal_machines_allocatable", ps)).toBe(0);
  });
});
