import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { scaled } from "../helpers/timeouts.js";
import { eventually, type LabUnderTest, startLabUnderTest } from "./lab-harness.js";

/**
 * A start with fewer --machines than the last one: what the control plane
 * shows must be what runs. A free machine the lab no longer simulates is
 * removed (else it would read Waiting and never be allocated); an allocated
 * one is never pulled from under its tenant.
 */
let t: LabUnderTest;

beforeAll(async () => {
  t = await startLabUnderTest(3);
});

afterAll(async () => {
  await t?.dispose();
});

const listed = async () => (await t.admin(AdminMachineService).list({ partition: LAB.partition })).machines;
const allWaiting = (n: number) => async () => {
  const all = await listed();
  return all.length === n && all.every((m) => m.waiting && m.events?.log[0]?.type === T.WAITING);
};

describe("metal-lab started again with fewer machines", () => {
  it(
    "keeps simulating an allocated machine beyond --machines",
    async () => {
      await eventually("3 waiting machines", allWaiting(3), 60_000);
      const last = t.lab.machines[2]!.uuid;
      await t.admin(MachineService).create({ machineId: last, project: LAB.project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname: "kept", networks: [t.lab.projectNetwork] });
      await eventually("the allocated machine to phone home", async () => (await t.events(last))[0] === T.PHONED_HOME, 60_000);

      await t.restartLab(2);
      expect(t.lab.machines.map((m) => m.uuid)).toContain(last);
      expect(t.lab.retired).toEqual([]);
      // It runs: rebooted by the lab's start, it comes back into its installed OS and phones home again.
      await eventually("the allocated machine to phone home after the restart", async () => {
        const log = await t.events(last);
        return log[0] === T.PHONED_HOME && log.filter((e) => e === T.PHONED_HOME).length >= 2;
      });
    },
    scaled(180_000),
  );

  it(
    "removes a free machine beyond --machines from the control plane, and brings it back with the same identity when there is room again",
    async () => {
      const last = t.lab.machines[2]!.uuid;
      await t.admin(MachineService).delete({ id: last, project: LAB.project });
      await eventually("3 waiting machines", allWaiting(3), 60_000);

      await t.restartLab(2);
      expect(t.lab.machines.map((m) => m.uuid)).not.toContain(last);
      expect(t.lab.retired).toEqual([last]);
      expect((await listed()).map((m) => m.id).sort()).toEqual(t.lab.machines.map((m) => m.uuid).sort());
      await eventually("2 waiting machines", allWaiting(2), 60_000);
      // Nothing left that reads Waiting but cannot be allocated: an allocation by size gets one of the two.
      const got = (await t.admin(MachineService).create({ project: LAB.project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname: "any", networks: [t.lab.projectNetwork] })).machine!;
      expect(t.lab.machines.map((m) => m.uuid)).toContain(got.id);
      await t.admin(MachineService).delete({ id: got.id, project: LAB.project });

      await t.restartLab(3);
      expect(t.lab.machines[2]!.uuid).toBe(last);
      await eventually("3 waiting machines again", allWaiting(3), 60_000);
    },
    scaled(180_000),
  );
});
