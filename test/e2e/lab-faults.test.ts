import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineRole, MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually, type LabUnderTest, startLabUnderTest } from "./lab-harness.js";

let t: LabUnderTest;

beforeAll(async () => {
  t = await startLabUnderTest(6);
});

afterAll(async () => {
  await t?.dispose();
});

const waitingNow = async (id: string) => {
  const m = await t.machine(id);
  return m.waiting && m.events?.log[0]?.type === T.WAITING;
};

describe("metal-lab under faults: the control plane restarts mid-provisioning", () => {
  it("every machine reaches its target state, no BMC command runs twice, no switch keeps a stale config", async () => {
    await eventually("6 waiting machines", async () => (await Promise.all(t.lab.machines.map((m) => waitingNow(m.uuid)))).every(Boolean));
    const api = t.admin(MachineService);
    const admin = t.admin(AdminMachineService);
    const [c, a, b] = [0, 1, 2].map((i) => t.lab.machines[i]!);

    // C: allocated and installed before the outage; it will be freed right before it.
    await api.create({ project: LAB.project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname: "c", networks: [t.lab.projectNetwork], machineId: c.uuid });
    await eventually("C to phone home", async () => (await t.events(c.uuid)).includes(T.PHONED_HOME));

    // A: a firewall whose installation is held at the image download when the control plane goes away.
    let releaseImages!: () => void;
    const gate = new Promise<void>((r) => (releaseImages = r));
    // The lab's image server chains on the gate when a download arrives: that call tells the test the download is under way.
    let downloadAsked = false;
    // biome-ignore lint/suspicious/noThenProperty: a thenable on purpose, so the test sees the moment the lab chains on the gate
    t.lab.imageGate = { then: (ok: () => void, fail: () => void) => ((downloadAsked = true), gate.then(ok, fail)) } as unknown as Promise<void>;
    await api.create({
      project: LAB.project,
      partition: LAB.partition,
      size: LAB.size,
      image: "firewall-ubuntu-3",
      hostname: "fw",
      role: MachineRole.FIREWALL,
      networks: [t.lab.projectNetwork, LAB.internet],
      machineId: a.uuid,
    });
    await eventually("A to be installing", async () => (await t.events(a.uuid))[0] === T.INSTALLING);
    await eventually("A's image download to be under way", () => downloadAsked);

    // B: an LED command the BMC has received but not yet carried out.
    let releaseBmc!: () => void;
    t.lab.bmcs.hold(b.uuid, new Promise<void>((r) => (releaseBmc = r)));
    const led = (await admin.bMCCommand({ id: b.uuid, command: BmcCommand.LED_ON, description: "outage drill" })).command!;
    await eventually("B's BMC to receive the command", () => b.bmc.received === 1);

    // Free C, cut leaf01's session, and take the control plane down without waiting for anything to settle.
    await api.delete({ id: c.uuid, project: LAB.project });
    t.lab.leaves.get("leaf01")!.core.interruptSession();
    await t.lab.stopControlPlane();

    // While it is down the partition carries on: the download finishes, the BMC carries out the LED command.
    releaseImages();
    t.lab.imageGate = undefined;
    releaseBmc();
    await eventually("B's LED to be on", () => b.bmc.led === "on");
    // Nothing between the download and the install step needs the control plane: A installs while it is down.
    await eventually("A's install step to run while the control plane is down", () => a.sim.ops.includes("install"));
    await t.lab.startControlPlane();

    await eventually("A to phone home", async () => (await t.events(a.uuid)).includes(T.PHONED_HOME), 20_000);
    expect((await t.machine(a.uuid)).allocation?.installed).toBe(true);
    await eventually("C to wait again", async () => (await t.events(c.uuid)).includes(T.MACHINE_RECLAIM) && (await waitingNow(c.uuid)), 20_000);
    expect((await t.machine(c.uuid)).allocation).toBeUndefined();
    for (const m of t.lab.machines.filter((x) => x !== a && x !== c)) await eventually(`${m.uuid} to wait`, () => waitingNow(m.uuid));

    // Every command acknowledged, each carried out once.
    await eventually("B's LED command to be acknowledged", async () => (await admin.commands({ id: b.uuid })).commands.find((x) => x.id === led.id)?.status === BmcCommandStatus.DONE);
    for (const m of t.lab.machines) {
      await eventually(`${m.uuid}'s commands to be done`, async () => (await admin.commands({ id: m.uuid })).commands.every((x) => x.status === BmcCommandStatus.DONE));
    }
    expect(b.bmc.executed).toEqual(["LED_ON"]);
    // The LED result could not reach the stopped control plane, so the command came again after the restart and was answered from metal-bmc's record.
    expect(t.lab.bmcAgent!.duplicates).toBeGreaterThan(0);
    expect(c.bmc.executed).toEqual(["BOOT_FROM_DISK", "LED_OFF", "BOOT_FROM_PXE", "RESET"]);
    expect(a.bmc.executed).toEqual(["BOOT_FROM_DISK"]);
    for (const m of t.lab.machines.filter((x) => x !== a && x !== b && x !== c)) expect(m.bmc.executed).toEqual([]);
    expect(c.pxeBoots).toBe(2);
    expect(a.pxeBoots).toBe(1);

    // Both leaves run the current state: the firewall's port in the default VRF, C's back in PXE, nothing else changed.
    const expected = Object.fromEntries(t.lab.machines.map((m) => [m.port, m === a ? "default" : "pxe"]));
    for (const leaf of ["leaf01", "leaf02"]) {
      await eventually(`${leaf} to run the current config`, async () => JSON.stringify(await t.portModes(leaf)) === JSON.stringify(expected));
      await t.synced(leaf);
    }
    // Later changes still arrive: the sessions are really back.
    await api.delete({ id: a.uuid, project: LAB.project });
    for (const leaf of ["leaf01", "leaf02"]) {
      await eventually(`${leaf} to put the firewall back into PXE`, async () => Object.values(await t.portModes(leaf)).every((v) => v === "pxe"));
      await t.synced(leaf);
    }
    await eventually("A to wait again", () => waitingNow(a.uuid));
  });
});
