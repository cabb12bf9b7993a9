import type http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { loadConfig } from "../../server/config.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * The lean Wait path's off switch (METAL_LEAN_WAIT=false): plain gRPC Waits go
 * to Connect's own handler like every other call, and metal-hammer's Wait
 * works the same: keepalives, then its allocation.
 */
let server: TestServer;
let fixture: PartitionFixture;

beforeAll(async () => {
  server = await startTestServer({ env: { METAL_LEAN_WAIT: "false" }, waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 600_000 } });
  fixture = await setUpPartition(server);
});

afterAll(() => fixture.stopAll());

describe("METAL_LEAN_WAIT", () => {
  it("is on unless switched off, by variable or flag", () => {
    expect(loadConfig({}, []).leanWait).toBe(true);
    expect(loadConfig({ METAL_LEAN_WAIT: "false" }, []).leanWait).toBe(false);
    expect(loadConfig({}, ["--lean-wait=false"]).leanWait).toBe(false);
    expect(() => loadConfig({ METAL_LEAN_WAIT: "sometimes" }, [])).toThrow(/lean-wait|METAL_LEAN_WAIT/);
  });

  it("off: a binary gRPC Wait is not taken by the lean path", () => {
    // A stream the lean path would start serving at once; untouched, it is left to Connect.
    const untouchable = new Proxy({} as http2.ServerHttp2Stream, {
      get: (_t, key) => {
        throw new Error(`the lean path touched the stream (${String(key)})`);
      },
    });
    const headers = { ":method": "POST", ":path": "/metal.infra.v1.BootService/Wait", "content-type": "application/grpc", te: "trailers" };
    expect(server.app.handler.takeStream?.(untouchable, headers) ?? false).toBe(false);
  });

  it("off: metal-hammer's Wait over gRPC has keepalives and then its allocation, through Connect's handler", async () => {
    const machine = await fixture.bootMachine("r1");
    await eventually("a keepalive on the Wait stream", () => machine.keepalives > 0);
    const { machine: allocated } = await server.client(MachineService, server.adminToken).create({
      project: "pa",
      partition: "p1",
      size: "s1",
      image: "debian-12",
      name: "off-1",
      networks: [fixture.primary.pa],
      machineId: machine.id,
    });
    const delivered = await machine.allocation;
    expect(delivered?.uuid).toBe(allocated!.allocation!.uuid);
  });
});
