import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { scaled } from "../helpers/timeouts.js";
import { eventually, type LabUnderTest, startLabUnderTest } from "./lab-harness.js";

/**
 * The lab's machines all reach their leaves' metal-core from 127.0.0.1. With
 * the machine endpoint's per-address caps (made for real machines, an address
 * each), the 33rd machine to hold its Wait stream was refused and never got
 * past PXE Booting: `npm run bench`'s 200-machine lab stopped at 32 waiting.
 * Forty machines here, more than the caps of one address allow.
 */
const MACHINES = 40;
let t: LabUnderTest;

beforeAll(async () => {
  t = await startLabUnderTest(MACHINES);
});
afterAll(async () => {
  await t?.dispose();
});

describe(`a lab of ${MACHINES} machines`, () => {
  it("boots every machine until it waits (all from one address)", async () => {
    const ids = new Set(t.lab.machines.map((m) => m.uuid));
    expect(ids.size).toBe(MACHINES);
    // A generous bound for a busy machine: quiet, they all wait within 2 s; refused ones never do.
    await eventually(
      `all ${MACHINES} machines to wait`,
      async () => {
        const { machines } = await t.admin(AdminMachineService).list({ paging: { limit: 1000 } });
        return machines.filter((m) => ids.has(m.id) && m.waiting).length === MACHINES;
      },
      scaled(60_000),
    );
  });
});
