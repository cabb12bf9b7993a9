import { randomUUID } from "node:crypto";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { MetalHammer } from "../../edge/hammer/hammer.js";
import { SimMachine } from "../../edge/sim/machine.js";
import { setUpPartition, type PartitionFixture } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let fixture: PartitionFixture;

// The server's default Wait pace: the first keepalive comes after 5 s, so the hammer's start-up probe ends on its own timeout.
beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
});

describe("metal-hammer against the default Wait pace", () => {
  it("takes a silent probe as free, wipes, and waits within the probe time", async () => {
    const token = fixture.infraToken;
    const transport = createGrpcTransport({ baseUrl: server.url, interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] });
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
    const started = Date.now();
    machine.powerOn("pxe");
    try {
      for (;;) {
        const m = (await server.client(AdminMachineService, server.adminToken).get({ id: uuid }).catch(() => undefined))?.machine;
        if (m?.waiting && m.events?.log[0]?.type === T.WAITING) break;
        if (Date.now() - started > 4_000) throw new Error("never reached Waiting");
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(Date.now() - started).toBeLessThan(4_000);
      expect(machine.disks[0]!.wipes).toBe(1);
    } finally {
      await machine.dispose();
    }
  });
});
