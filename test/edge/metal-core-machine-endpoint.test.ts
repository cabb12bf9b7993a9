import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCoreConfig } from "../../edge/core/main.js";
import { MetalCore } from "../../edge/core/metal-core.js";
import { SimSwitch } from "../../edge/sim/switch.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";
import { HammerSide, randomMac, s1Hardware, waitForAllocation } from "./machine-endpoint-helpers.js";

const TIMING = { heartbeatMs: 100, backoff: { initialMs: 50, maxMs: 400 }, lldpPollMs: 30, phoneHomeMs: 150, retryMs: 150 };

describe("metal-core's machine endpoint settings", () => {
  const base = { METAL_CORE_TOKEN: "t", METAL_CORE_PARTITION_ID: "p1", METAL_CORE_RACK_ID: "r1" };

  it("are off unless set, and read host:port from a flag or the environment", () => {
    expect(loadCoreConfig(base, [])).toMatchObject({ machineListen: undefined, machineEndpoint: undefined });
    expect(loadCoreConfig({ ...base, METAL_CORE_MACHINE_LISTEN: "0.0.0.0:9091" }, ["--machine-endpoint", "10.255.255.1:9091"])).toMatchObject({
      machineListen: "0.0.0.0:9091",
      machineEndpoint: "10.255.255.1:9091",
    });
    expect(loadCoreConfig(base, ["--machine-listen=[::]:9091"]).machineListen).toBe("[::]:9091");
  });

  it("refuse an address without a port, and an advertised endpoint that nothing serves", () => {
    expect(() => loadCoreConfig(base, ["--machine-listen", "10.255.255.1"])).toThrow(/--machine-listen \(\$METAL_CORE_MACHINE_LISTEN\)/);
    expect(() => loadCoreConfig(base, ["--machine-endpoint", "10.255.255.1:9091"])).toThrow(/needs --machine-listen/);
  });
});

describe("metal-core with a machine endpoint", () => {
  let server: TestServer;
  let fixture: PartitionFixture;
  let root: string;
  let core: MetalCore;
  let side: HammerSide;

  beforeAll(async () => {
    server = await startTestServer({ waitTiming: { keepaliveMs: 200, leaseMs: scaled(15_000), recheckMs: 1_000 } });
    fixture = await setUpPartition(server);
    root = await mkdtemp(join(tmpdir(), "metal-core-machines-"));
    core = new MetalCore({ url: server.url, token: fixture.infraToken, partition: "p1", rack: "r1", os: new SimSwitch({ id: "leaf01", root }), timing: TIMING, machineListen: "127.0.0.1:0" });
    core.start();
  });

  afterAll(async () => {
    side?.close();
    await core?.stop();
    fixture?.stopAll();
    await rm(root, { recursive: true, force: true });
  });

  it("registers its switch with the endpoint it serves; the boot path hands it to machines", async () => {
    const stored = await eventually("leaf01 to register its machine endpoint", async () => {
      const { rows } = (await server.app.db.execute(sql`select machine_endpoint from switches where id = 'leaf01'`)) as unknown as { rows: { machine_endpoint: string }[] };
      return rows[0]?.machine_endpoint || undefined;
    });
    expect(core.machineEndpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(stored).toBe(core.machineEndpoint);
    const boot = await server.grpcClient(BootService, fixture.infraToken).boot({ partition: "p1", mac: randomMac(), uuid: randomUUID() });
    expect(boot.coreEndpoints).toContain(core.machineEndpoint);
  });

  it("advertises its address on the PXE VLAN when it listens on every interface", async () => {
    const wildcard = new MetalCore({
      url: server.url,
      token: fixture.infraToken,
      partition: "p1",
      rack: "r1",
      os: new SimSwitch({ id: "leaf02", root: join(root, "leaf02") }),
      timing: TIMING,
      // The PXE VLAN's address stands in for the switch's SVI: machines reach it there.
      settings: { pxeCidr: "127.0.0.1/8" },
      machineListen: "0.0.0.0:0",
    });
    wildcard.start();
    let hammer: HammerSide | undefined;
    try {
      const endpoint = await eventually("leaf02 to serve machines", () => wildcard.machineEndpoint);
      expect(endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
      hammer = new HammerSide(endpoint);
      const image = await hammer.client(ImageService, fixture.infraToken).get({ id: "debian-12" });
      expect(image.image?.id).toBe("debian-12.0.20250101");
    } finally {
      hammer?.close();
      await wildcard.stop();
    }
  });

  it("serves a machine's calls, and stop() cuts its open Wait with Unavailable and closes the endpoint", async () => {
    side = new HammerSide(core.machineEndpoint!);
    const id = randomUUID();
    const mac = randomMac();
    const { machineCredential: credential } = await server.grpcClient(BootService, fixture.infraToken).boot({ partition: "p1", mac, uuid: id });
    const boot = side.client(BootService, credential);
    const events = side.client(EventService, credential);
    expect((await side.client(ImageService, credential).get({ id: "debian-12" })).image?.id).toBe("debian-12.0.20250101");
    await events.send({ partition: "p1", events: [{ machineId: id, type: T.PREPARING }] });
    await boot.register({ partition: "p1", machineId: id, hardware: s1Hardware(mac) });
    await events.send({ partition: "p1", events: [T.REGISTERING, T.WAITING].map((type) => ({ machineId: id, type })) });
    const ended = waitForAllocation(boot, id).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    await eventually("the machine to wait", async () => (await server.client(AdminMachineService, server.adminToken).get({ id })).machine?.waiting);

    await core.stop();
    expect((await ended)?.code).toBe(Code.Unavailable);
    const after = await side
      .client(ImageService, credential)
      .get({ id: "debian-12" })
      .then(
        () => undefined,
        (err: unknown) => ConnectError.from(err),
      );
    expect(after?.code).toBe(Code.Unavailable);
    // Still known after the stop (a restart may serve the same address again).
    expect(core.machineEndpoint).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});
