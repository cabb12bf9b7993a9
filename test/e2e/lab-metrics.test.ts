import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineService, MachineState, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { type Exposition, sampleValue, scrape } from "../helpers/prometheus-text.js";
import { scaled } from "../helpers/timeouts.js";
import { eventually, type LabUnderTest, startLabUnderTest } from "./lab-harness.js";

// The business metrics of /metrics (docs/metrics.md) in the lab: two simulated machines, allocated and freed.
let t: LabUnderTest;
const p = LAB.partition;
const size = LAB.size;
const ps = { partition: p, size };

beforeAll(async () => {
  t = await startLabUnderTest(2);
});

afterAll(async () => {
  await t?.dispose();
});

const metrics = () => scrape(t.lab.apiUrl);

/** Scrapes until `check` passes (cluster-wide values are read at most every 2 s), then returns that scrape. */
async function until(what: string, check: (e: Exposition) => boolean, timeoutMs = scaled(20_000)): Promise<Exposition> {
  return eventually(
    what,
    async () => {
      const e = await metrics();
      return check(e) ? e : undefined;
    },
    timeoutMs,
  );
}

const machines = (e: Exposition, state: string, allocation: string) => sampleValue(e, "metal_machines", { ...ps, state, allocation });
const counter = (e: Exposition, name: string, labels: Record<string, string>) => sampleValue(e, name, labels) ?? 0;

describe("business metrics on /metrics of the lab", () => {
  let allocated: string;
  let other: string;

  it("count the waiting machines, the sessions of metal-core and metal-bmc, and the switches' syncs", async () => {
    const replica = t.lab.app!.replica.id;
    const e = await until(
      "both machines to be allocatable",
      (e) =>
        sampleValue(e, "metal_machines_allocatable", ps) === 2 &&
        sampleValue(e, "metal_wait_streams_open", { replica }) === 2 &&
        sampleValue(e, "metal_switch_sync_failing", { partition: p, switch: "leaf02" }) === 0,
    );
    expect(machines(e, "available", "free")).toBe(2);
    expect(machines(e, "available", "allocated")).toBe(0);
    expect(machines(e, "locked", "free")).toBe(0);
    expect(sampleValue(e, "metal_machines_free", ps)).toBe(2);
    expect(sampleValue(e, "metal_machines_waiting", ps)).toBe(2);
    expect(sampleValue(e, "metal_machines_by_liveliness", { ...ps, liveliness: "alive" })).toBe(2);
    expect(sampleValue(e, "metal_machines_by_liveliness", { ...ps, liveliness: "dead" })).toBe(0);
    expect(sampleValue(e, "metal_daemon_sessions", { replica, kind: "switch", partition: p })).toBe(2);
    expect(sampleValue(e, "metal_daemon_sessions", { replica, kind: "bmc", partition: p })).toBe(1);
    for (const leaf of ["leaf01", "leaf02"]) {
      expect(sampleValue(e, "metal_switch_sync_failing", { partition: p, switch: leaf })).toBe(0);
      expect(sampleValue(e, "metal_switch_last_sync_age_seconds", { partition: p, switch: leaf })).toBeGreaterThanOrEqual(0);
      expect(sampleValue(e, "metal_switch_last_sync_duration_seconds", { partition: p, switch: leaf })).toBeGreaterThanOrEqual(0);
      expect(counter(e, "metal_switch_syncs_total", { switch: leaf, outcome: "ok" })).toBeGreaterThanOrEqual(1);
      expect(counter(e, "metal_switch_syncs_total", { switch: leaf, outcome: "failed" })).toBe(0);
    }
    expect(sampleValue(e, "metal_bmc_commands_pending", { partition: p })).toBe(0);
    expect(sampleValue(e, "metal_bmc_command_oldest_pending_age_seconds", { partition: p })).toBe(0);
    expect(counter(e, "metal_machine_allocations_total", { ...ps, outcome: "ok" })).toBe(0);
    expect(e.types.get("metal_machine_allocations_total")).toBe("counter");
    expect(e.types.get("metal_machines")).toBe("gauge");
  });

  it("after an allocation: one machine allocated, one allocatable, the allocation counted; none left once the other is locked", async () => {
    const m = (await t.admin(MachineService).create({ project: LAB.project, partition: p, size, image: "debian-12", hostname: "m1", networks: [t.lab.projectNetwork] })).machine!;
    allocated = m.id;
    other = t.lab.machines.find((x) => x.uuid !== allocated)!.uuid;
    let e = await until("the allocation to show", (e) => machines(e, "available", "allocated") === 1 && sampleValue(e, "metal_machines_allocatable", ps) === 1);
    expect(machines(e, "available", "free")).toBe(1);
    expect(sampleValue(e, "metal_machines_free", ps)).toBe(1);
    expect(counter(e, "metal_machine_allocations_total", { ...ps, outcome: "ok" })).toBe(1);

    // The remaining machine held back by an operator: allocation finds none, and that is counted too.
    await t.admin(AdminMachineService).setState({ id: other, state: MachineState.LOCKED, reason: "metrics test" });
    await expect(t.admin(MachineService).create({ project: LAB.project, partition: p, size, image: "debian-12", hostname: "m2", networks: [t.lab.projectNetwork] })).rejects.toThrow();
    e = await until("the locked machine to show", (e) => machines(e, "locked", "free") === 1);
    expect(sampleValue(e, "metal_machines_allocatable", ps)).toBe(0);
    expect(sampleValue(e, "metal_machines_free", ps)).toBe(0);
    expect(counter(e, "metal_machine_allocations_total", { ...ps, outcome: "resource_exhausted" })).toBe(1);
    expect(counter(e, "metal_machine_allocations_total", { ...ps, outcome: "ok" })).toBe(1);
    await t.admin(AdminMachineService).setState({ id: other, state: MachineState.AVAILABLE });

    // An allocation of a size that does not exist is counted without partition and size: requests mint no series.
    await expect(t.admin(MachineService).create({ project: LAB.project, partition: p, size: "no-such-size", image: "debian-12", networks: [t.lab.projectNetwork] })).rejects.toThrow();
    e = await until("the unresolved allocation to be counted", (e) => counter(e, "metal_machine_allocations_total", { partition: "", size: "", outcome: "not_found" }) === 1);
    expect(e.samples.some((s) => s.labels.size === "no-such-size")).toBe(false);
  });

  it("after the installation and a free: nothing allocated, both allocatable again, the free and the BMC commands counted", async () => {
    await eventually("the machine to phone home", async () => (await t.events(allocated)).includes(T.PHONED_HOME), scaled(30_000));
    await t.admin(MachineService).delete({ id: allocated, project: LAB.project });
    await eventually("the machine to wait again", async () => {
      const m = await t.machine(allocated);
      return (await t.events(allocated)).includes(T.MACHINE_RECLAIM) && m.waiting && m.events?.log[0]?.type === T.WAITING;
    });
    const replica = t.lab.app!.replica.id;
    const e = await until(
      "the free to show",
      (e) => machines(e, "available", "allocated") === 0 && sampleValue(e, "metal_machines_allocatable", ps) === 2 && sampleValue(e, "metal_bmc_commands_pending", { partition: p }) === 0,
    );
    expect(machines(e, "available", "free")).toBe(2);
    expect(machines(e, "locked", "free")).toBe(0);
    expect(sampleValue(e, "metal_machines_free", ps)).toBe(2);
    expect(sampleValue(e, "metal_wait_streams_open", { replica })).toBe(2);
    expect(counter(e, "metal_machine_frees_total", { ...ps, outcome: "ok" })).toBe(1);
    expect(counter(e, "metal_machine_allocations_total", { ...ps, outcome: "ok" })).toBe(1);
    // Boot from disk after the installation, then LED off, boot from PXE and reset of the free: each done once.
    expect(counter(e, "metal_bmc_commands_settled_total", { partition: p, outcome: "done" })).toBe(4);
    expect(counter(e, "metal_bmc_commands_settled_total", { partition: p, outcome: "failed" })).toBe(0);

    // Freeing it again finds nothing allocated: counted as not found, without partition and size.
    await expect(t.admin(MachineService).delete({ id: allocated, project: LAB.project })).rejects.toThrow();
    const after = await metrics();
    expect(counter(after, "metal_machine_frees_total", { partition: "", size: "", outcome: "not_found" })).toBe(1);
    expect(counter(after, "metal_machine_frees_total", { ...ps, outcome: "ok" })).toBe(1);
  });
});
