import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * While metal-bmc is away, repeated frees and repeated operator commands
 * must not pile up: a new command supersedes a pending one of the same
 * machine and name, which stays in the history as failed, "superseded by"
 * the new one. No metal-bmc is connected here, so every command stays pending
 * until superseded.
 */

let server: TestServer;
let fixture: PartitionFixture;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 600_000 } });
  fixture = await setUpPartition(server);
});

afterAll(() => fixture.stopAll());

describe("BMC commands queued while metal-bmc is away", () => {
  it("keep one pending command per machine and name; the superseded ones say by which", async () => {
    const hammer = await fixture.bootMachine("r1");
    const tenant = server.client(MachineService, server.adminToken);
    const admin = server.client(AdminMachineService, server.adminToken);
    const request = { project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "m", networks: [fixture.primary.pb], machineId: hammer.id };

    for (let round = 0; round < 3; round++) {
      await tenant.create(request);
      await tenant.delete({ id: hammer.id, project: "pb" });
      // The reclaimed hammer waits again (its new Wait stream, played directly).
      await server.app.db.execute(sql`update machines set waiting_until = now() + interval '1 hour' where id = ${hammer.id}`);
    }
    await admin.bMCCommand({ id: hammer.id, command: BmcCommand.LED_ON, description: "find me" });
    await admin.bMCCommand({ id: hammer.id, command: BmcCommand.LED_ON, description: "find me, really" });
    await admin.bMCCommand({ id: hammer.id, command: BmcCommand.POWER_OFF });

    const listed = (await admin.commands({ id: hammer.id })).commands;
    const pending = listed.filter((c) => c.status === BmcCommandStatus.PENDING).map((c) => c.command);
    // Newest first: each name once; LED_OFF (from the last free) and LED_ON are different commands and both stay.
    expect(pending).toEqual(["POWER_OFF", "LED_ON", "RESET", "BOOT_FROM_PXE", "LED_OFF"]);
    const superseded = listed.filter((c) => c.status !== BmcCommandStatus.PENDING);
    expect(superseded).toHaveLength(3 * 2 + 1);
    const byId = new Map(listed.map((c) => [c.id, c]));
    for (const old of superseded) {
      expect(old.status).toBe(BmcCommandStatus.FAILED);
      const by = /^superseded by (\S+)$/.exec(old.result)?.[1];
      expect(by, old.result).toBeDefined();
      // Superseded by a newer command of the same name.
      expect(byId.get(by!)?.command).toBe(old.command);
      expect(by! > old.id).toBe(true);
    }
    const [counts] = (
      (await server.app.db.execute(sql`select count(*)::int as n from bmc_commands where machine_id = ${hammer.id} and status = 'pending'`)) as unknown as {
        rows: { n: number }[];
      }
    ).rows;
    expect(counts!.n).toBe(5);
  });
});
