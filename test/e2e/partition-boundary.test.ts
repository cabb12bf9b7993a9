import { sql } from "drizzle-orm";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseBootParams } from "../../edge/hammer/boot-params.js";
import type { LabMachine } from "../../edge/lab/lab.js";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { scaled } from "../helpers/timeouts.js";
import { eventually, type LabUnderTest, startLabUnderTest } from "./lab-harness.js";

/**
 * The partition boundary in the lab: every metal-hammer reaches the control
 * plane only through its leaves' metal-cores, with its own machine
 * credential from its boot answer. One leaf's metal-core going away (while
 * machines wait, while one installs) moves the machines to the other leaf.
 */
let t: LabUnderTest;

beforeAll(async () => {
  t = await startLabUnderTest(3);
  await eventually("3 waiting machines", async () => (await Promise.all(t.lab.machines.map((m) => waitingNow(m.uuid)))).every(Boolean), scaled(30_000));
});

afterAll(async () => {
  await t?.dispose();
});

const waitingNow = async (id: string) => {
  const m = await t.machine(id);
  return m.waiting && m.events?.log[0]?.type === T.WAITING;
};

/** Until when the control plane holds the machine allocatable (set by a Wait stream that opens, extended while one is open). */
async function waitingUntil(id: string): Promise<number> {
  const res = (await t.lab.app!.db.execute(sql`select waiting_until from machines where id = ${id}`)) as unknown as { rows: { waiting_until: Date | string | null }[] };
  const v = res.rows[0]?.waiting_until;
  return v ? new Date(v).getTime() : 0;
}

function allocate(m: LabMachine, hostname: string) {
  return t.admin(MachineService).create({ project: LAB.project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname, networks: [t.lab.projectNetwork], machineId: m.uuid });
}

/** The machine installed, phoned home, and did it in one go: one PXE boot, one installation, no crash. */
async function installedInOneGo(m: LabMachine): Promise<void> {
  await eventually(`${m.uuid} to phone home`, async () => (await t.events(m.uuid)).includes(T.PHONED_HOME), scaled(30_000));
  const events = await t.events(m.uuid);
  expect(events).not.toContain(T.CRASHED);
  expect(events.filter((e) => e === T.PXE_BOOTING)).toHaveLength(1);
  expect(events.filter((e) => e === T.INSTALLING)).toHaveLength(1);
  expect(events).toContain(T.BOOTING_NEW_KERNEL);
  expect((await t.machine(m.uuid)).allocation?.installed).toBe(true);
  expect(m.pxeBoots).toBe(1);
  expect(m.osBoots).toBe(1);
}

describe("the partition boundary: metal-hammer through its leaves' metal-cores, with its own credential", () => {
  it("leaf01's metal-core stops while machines wait: their Wait streams move to leaf02, they stay allocatable, and one allocated now installs", async () => {
    const [a] = t.lab.machines;
    const stoppedAt = Date.now();
    await t.lab.stopCore("leaf01");
    // A lease written after the stop (a Wait stream that opened, or one still open being renewed) is one held through leaf02.
    for (const m of t.lab.machines) {
      await eventually(`${m.uuid} to wait through leaf02`, async () => (await waitingUntil(m.uuid)) >= stoppedAt + t.lab.timings.wait.leaseMs && (await waitingNow(m.uuid)));
    }
    await allocate(a!, "while-leaf01-is-down");
    await installedInOneGo(a!);
  });

  it("leaf02's metal-core stops during an installation: the installation completes through leaf01 (started again), nothing lost", async () => {
    const b = t.lab.machines[1]!;
    await t.lab.startCore("leaf01");
    await t.synced("leaf01");
    // Held at the image download: the allocation has reached the hammer, which installs from here on.
    let releaseImages!: () => void;
    const gate = new Promise<void>((r) => (releaseImages = r));
    let downloadAsked = false;
    // biome-ignore lint/suspicious/noThenProperty: a thenable on purpose, so the test sees the moment the lab chains on the gate
    t.lab.imageGate = { then: (ok: () => void, fail: () => void) => ((downloadAsked = true), gate.then(ok, fail)) } as unknown as Promise<void>;
    try {
      await allocate(b, "while-leaf02-goes");
      await eventually("B to be installing", async () => (await t.events(b.uuid))[0] === T.INSTALLING);
      await eventually("B's image download to be under way", () => downloadAsked);
      await t.lab.stopCore("leaf02");
    } finally {
      t.lab.imageGate = undefined;
      releaseImages();
    }
    await installedInOneGo(b);
    // One allocation each, the two made by this file; the third machine still waits (through leaf01 now).
    const allocated = (await t.admin(AdminMachineService).list({ partition: LAB.partition })).machines.filter((m) => m.allocation);
    expect(allocated.map((m) => m.allocation?.hostname).sort()).toEqual(["while-leaf01-is-down", "while-leaf02-goes"]);
    await eventually("the third machine to wait", () => waitingNow(t.lab.machines[2]!.uuid));
  });

  it("no boot answer pixie served carries the infra token; each carries its own machine's credential only", () => {
    const infraToken = t.lab.infraToken;
    const tokenId = decodeJwt(infraToken).jti;
    expect(tokenId).toBeTruthy();
    const answers = t.lab.bootAnswers;
    for (const a of answers) {
      expect(a.body).not.toContain(infraToken);
      expect(a.body).not.toContain(tokenId);
    }
    const served = answers.filter((a) => a.status === 200);
    // Every machine booted once, on an answer of its own.
    expect(new Set(served.map((a) => a.machine))).toEqual(new Set(t.lab.machines.map((m) => m.uuid)));
    const credentials = new Map<string, string>();
    for (const a of served) {
      const params = parseBootParams((JSON.parse(a.body) as { cmdline: string }).cmdline);
      expect(params.machineId).toBe(a.machine);
      expect(decodeJwt(params.credential).sub).toBe(a.machine);
      expect(params.cores.length).toBe(2);
      credentials.set(params.credential, a.machine);
    }
    for (const a of served) {
      for (const [credential, machine] of credentials) if (machine !== a.machine) expect(a.body).not.toContain(credential);
    }
  });
});
