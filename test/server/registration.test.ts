import { randomUUID } from "node:crypto";
import { type Client, Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { SizeService as AdminSizeService } from "../../gen/metal/admin/v1/size_pb.js";
import { SwitchService as AdminSwitchService } from "../../gen/metal/admin/v1/switch_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { ProvisioningEventType } from "../../gen/metal/api/v1/machine_pb.js";
import { SizeConstraintType } from "../../gen/metal/api/v1/size_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let boot: Client<typeof BootService>;
let switches: Client<typeof SwitchService>;
let machines: Client<typeof AdminMachineService>;
const GiB = 2n ** 30n;

const leaf = (id: string, rack: string) => ({
  partition: "p1",
  id,
  rack,
  osVendor: "Cumulus",
  osVersion: "5.9",
  managementIp: "10.255.0.1",
  nics: [1, 2, 3, 4].map((n) => ({ name: `swp${n}`, identifier: `aa:bb:cc:00:0${n}:${id.slice(-2)}` })),
});

const hardware = (leaves: [string, string], memory = 32n * GiB) => ({
  memory,
  cpus: [{ vendor: "Intel", model: "Intel Xeon 4314", cores: 8, threads: 16 }],
  disks: [{ name: "/dev/sda", size: 480_000_000_000n }],
  nics: [
    { name: "eth0", mac: "0c:c4:7a:00:00:01", neighbors: [{ hostname: leaves[0], port: "swp1" }] },
    { name: "eth1", mac: "0c:c4:7a:00:00:02", neighbors: [{ hostname: leaves[1], port: "swp1" }] },
  ],
  gpus: [],
});

beforeAll(async () => {
  server = await startTestServer();
  const admin = server.adminToken;
  await server.client(AdminPartitionService, admin).create({
    id: "p1",
    bootConfig: { kernelUrl: "http://boot.example/vmlinuz", imageUrl: "http://boot.example/hammer.img", commandLine: "console=ttyS0" },
  });
  await server.client(AdminSizeService, admin).create({
    id: "c1-medium",
    constraints: [
      { type: SizeConstraintType.CORES, min: 8n, max: 8n },
      { type: SizeConstraintType.MEMORY, min: 32n * GiB, max: 32n * GiB },
      { type: SizeConstraintType.STORAGE, min: 400_000_000_000n, max: 600_000_000_000n, identifier: "/dev/sd*" },
    ],
  });
  const infra = (await server.client(AdminTokenService, admin).create({ subject: "p1-agents", roles: { infraPartition: "p1" } })).secret;
  boot = server.client(BootService, infra);
  switches = server.client(SwitchService, infra);
  machines = server.client(AdminMachineService, admin);
  for (const [id, rack] of [
    ["leaf01", "r1"],
    ["leaf02", "r1"],
    ["leaf03", "r2"],
  ] as const)
    await switches.register(leaf(id, rack));
});

describe("switch registration", () => {
  it("is idempotent and tells a first registration apart", async () => {
    expect((await switches.register(leaf("leaf09", "r9"))).created).toBe(true);
    expect((await switches.register(leaf("leaf09", "r9"))).created).toBe(false);
  });

  it("keeps the switch's generation when the same switch registers again, and bumps it when its ports change", async () => {
    const adminSwitches = server.client(AdminSwitchService, server.adminToken);
    const version = async () => (await adminSwitches.get({ id: "leaf11" })).switch!.meta!.version;
    await switches.register(leaf("leaf11", "r9"));
    const first = await version();
    // metal-core restarting or reconnecting: nothing to push to the switch again.
    await switches.register(leaf("leaf11", "r9"));
    expect(await version()).toBe(first);
    const more = leaf("leaf11", "r9");
    await switches.register({ ...more, nics: [...more.nics, { name: "swp5", identifier: "aa:bb:cc:00:05:11" }] });
    expect(await version()).toBe(first + 1n);
  });

  it("validates", async () => {
    await expectCode(switches.register({ ...leaf("Leaf_X", "r1") }), Code.InvalidArgument, "id:");
    await expectCode(switches.register({ ...leaf("leaf10", "r1"), nics: [{ name: "swp1" }, { name: "swp1" }] }), Code.InvalidArgument, "is a duplicate");
    await expectCode(switches.register({ ...leaf("leaf10", "r1"), managementIp: "nope" }), Code.InvalidArgument, "management_ip");
  });
});

describe("boot and registration", () => {
  it("serves the partition's boot configuration and records PXE Booting", async () => {
    const b = await boot.boot({ partition: "p1", mac: "0c:c4:7a:00:00:01" });
    expect(b).toMatchObject({ kernel: "http://boot.example/vmlinuz", initRamDisks: ["http://boot.example/hammer.img"], cmdline: "console=ttyS0" });
    const id = randomUUID();
    await boot.dhcp({ partition: "p1", machineId: id });
    const { machine } = await machines.get({ id });
    expect(machine?.events?.log[0]?.type).toBe(ProvisioningEventType.PXE_BOOTING);
  });

  it("matches the size and wires the machine to its two leaves", async () => {
    const id = randomUUID();
    const res = await boot.register({ partition: "p1", machineId: id, hardware: hardware(["leaf01", "leaf02"]), bios: { vendor: "AMI", version: "1.2", date: "2024-01-01" } });
    expect(res).toMatchObject({ size: "c1-medium", rack: "r1" });
    const { machine } = await machines.get({ id });
    expect(machine).toMatchObject({ size: "c1-medium", rack: "r1", partition: "p1" });
    // Registering again changes nothing but the version.
    expect(await boot.register({ partition: "p1", machineId: id, hardware: hardware(["leaf01", "leaf02"]) })).toMatchObject({ size: "c1-medium", rack: "r1" });
  });

  it("lets only a registered machine wait", async () => {
    const id = randomUUID();
    // A PXE boot alone creates the machine record, but it has no size or cabling yet.
    await boot.dhcp({ partition: "p1", machineId: id });
    const wait = async () => {
      for await (const _ of boot.wait({ partition: "p1", machineId: id })) return;
    };
    await expectCode(wait(), Code.FailedPrecondition, "has not registered its hardware");
    expect((await machines.get({ id })).machine?.waiting).toBe(false);
  });

  it("registers hardware no size fits as unknown", async () => {
    const res = await boot.register({ partition: "p1", machineId: randomUUID(), hardware: hardware(["leaf01", "leaf02"], 64n * GiB) });
    expect(res.size).toBe("unknown");
  });

  it("stores nothing when the cabling is wrong", async () => {
    const id = randomUUID();
    await expectCode(boot.register({ partition: "p1", machineId: id, hardware: hardware(["leaf01", "leaf03"]) }), Code.FailedPrecondition, "different racks");
    await expectCode(boot.register({ partition: "p1", machineId: id, hardware: hardware(["leaf01", "nobody"]) }), Code.FailedPrecondition, "exactly two leaf switches");
    await expectCode(machines.get({ id }), Code.NotFound);
  });

  it("validates the inventory", async () => {
    const id = randomUUID();
    const hw = hardware(["leaf01", "leaf02"]);
    await expectCode(boot.register({ partition: "p1", machineId: "nope", hardware: hw }), Code.InvalidArgument, "machine_id");
    await expectCode(boot.register({ partition: "p1", machineId: id }), Code.InvalidArgument, "hardware: is required");
    await expectCode(boot.register({ partition: "p1", machineId: id, hardware: { ...hw, memory: 0n, cpus: [] } }), Code.InvalidArgument, "hardware.memory");
    await expectCode(boot.register({ partition: "p1", machineId: id, hardware: { ...hw, nics: [{ ...hw.nics[0]!, mac: "xx" }] } }), Code.InvalidArgument, "hardware.nics[0].mac");
    await expectCode(boot.register({ partition: "p2", machineId: id, hardware: hw }), Code.PermissionDenied);
  });
});
