import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { MetalHammer } from "../../edge/hammer/hammer.js";
import { SimMachine } from "../../edge/sim/machine.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let fixture: PartitionFixture;

// A Wait that stays silent (no keepalive for an hour): the hammer's start-up probe can only end on its own peek timeout,
// so reaching Waiting at all proves it does (the default pace would send a keepalive after 5 s and hide a hammer that waits for it).
beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 3_600_000, leaseMs: 60_000, recheckMs: 60_000 } });
  fixture = await setUpPartition(server);
});

describe("metal-hammer against a silent Wait", () => {
  it("takes a silent probe as free, wipes, and waits", async () => {
    const token = fixture.infraToken;
    const transport = createTransport({ baseUrl: server.url, token });
    const uuid = randomUUID();
    const machine = new SimMachine(
      {
        uuid,
        nics: [
          { name: "eth0", mac: "0c:c4:7a:cc:00:00", neighbors: [{ hostname: "leaf03", port: "swp1" }] },
          { name: "eth1", mac: "0c:c4:7a:cc:00:01", neighbors: [{ hostname: "leaf04", port: "swp1" }] },
        ],
      },
      { pxeBoot: (m, signal) => void new MetalHammer({ transport, partition: "p1", hardware: m, timing: { peekMs: 300, backoff: { initialMs: 20, maxMs: 200 } } }).run(signal) },
    );
    machine.powerOn("pxe");
    try {
      await eventually("the machine to reach Waiting", async () => {
        const m = (await server.client(AdminMachineService, server.adminToken).get({ id: uuid })).machine;
        return m?.waiting && m.events?.log[0]?.type === T.WAITING;
      });
      expect(machine.disks[0]!.wipes).toBe(1);
    } finally {
      await machine.dispose();
    }
  });
});
