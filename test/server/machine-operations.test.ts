import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FilesystemLayoutService as AdminLayouts } from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImages } from "../../gen/metal/admin/v1/image_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { NetworkService as AdminNetworks } from "../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { SizeReservationService as AdminSizeReservations } from "../../gen/metal/admin/v1/size_reservation_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { Format, GptType } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageFeature } from "../../gen/metal/api/v1/image_pb.js";
import { IPService, IpType } from "../../gen/metal/api/v1/ip_pb.js";
import { MachineRole, MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { machineLifecycleRepository } from "../../server/repositories/machine-repository.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition, type WaitingMachine } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

let server: TestServer;
let fixture: PartitionFixture;
let editorToken: string;
let tenant: ReturnType<typeof server.client<typeof MachineService>>;

const rows = async <R>(q: ReturnType<typeof sql>) => ((await server.app.db.execute(q)) as unknown as { rows: R[] }).rows;
const commands = async (id: string) => (await machineLifecycleRepository.commandsOf(server.app.db, id)).map((c) => c.command);
const portVrfs = async (id: string) => (await rows<{ vrf: string | null }>(sql`select vrf from machine_connections where machine_id = ${id}`)).map((r) => r.vrf);
const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3l0ZXN0a2V5Zm9ybWV0YWxsYWJvbmx5 test@metal";
const BOOT_INFO = { imageId: "debian-12.0.20250101", primaryDisk: "/dev/sda", osPartition: "/dev/sda2", kernel: "/boot/vmlinuz", initrd: "/boot/initrd", cmdline: "root=/dev/sda2", bootloaderId: "debian" };

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 1_000 } });
  fixture = await setUpPartition(server);
  editorToken = (await server.client(AdminTokens, server.adminToken).create({ subject: "ed", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  tenant = server.client(MachineService, editorToken);
  await server
    .client(AdminPartitions, server.adminToken)
    .update({ id: "p1", version: 1n, dnsServers: { values: ["9.9.9.9"] }, ntpServers: { values: ["pool.ntp.org"] } })
    .catch(async () => {
      // Partition updates send the version they read; read it when the first guess is stale.
      const p = (await server.client(AdminPartitions, server.adminToken).list({})).partitions.find((x) => x.id === "p1")!;
      await server.client(AdminPartitions, server.adminToken).update({ id: "p1", version: p.meta!.version, dnsServers: { values: ["9.9.9.9"] }, ntpServers: { values: ["pool.ntp.org"] } });
    });
  await server.client(AdminImages, server.adminToken).create({ id: "debian-12.0.20250601", url: "http://images.example/debian2.tar", features: [ImageFeature.MACHINE] });
  await server.client(AdminImages, server.adminToken).create({ id: "firewall-3.0.20250101", url: "http://images.example/fw.tar", features: [ImageFeature.FIREWALL] });
});

afterAll(() => fixture.stopAll());

/** Allocates a waiting machine of project pb and plays the hammer through a successful installation. */
async function installed(hammer: WaitingMachine, extra: { tags?: string[] } = {}) {
  const { machine } = await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12.0.20250101", name: "app", networks: [fixture.primary.pb], machineId: hammer.id, ...extra });
  await hammer.allocation;
  await server.client(EventService, fixture.infraToken).send({ partition: "p1", events: [T.INSTALLING, T.BOOTING_NEW_KERNEL].map((type) => ({ machineId: hammer.id, type })) });
  await server.client(BootService, fixture.infraToken).installationSucceeded({ partition: "p1", machineId: hammer.id, consolePassword: "pw-1", bootInfo: BOOT_INFO });
  return machine!;
}

describe("allocation details", () => {
  it("stores tags with the system tags, the partition's DNS and NTP servers, and the given static IP instead of an automatic one", async () => {
    const hammer = await fixture.bootMachine("r1");
    const ip = (await server.client(IPService, editorToken).create({ project: "pb", network: fixture.primary.pb, type: IpType.STATIC, name: "fixed" })).ip!;
    const { machine } = await tenant.create({
      project: "pb",
      partition: "p1",
      size: "s1",
      image: "debian-12",
      name: "web",
      networks: [fixture.primary.pb],
      machineId: hammer.id,
      ips: [ip.ip],
      tags: ["team=a", "team=b", "web", "metal.io/rack=forged"],
      placementTags: ["spread-me"],
    });
    expect(machine?.tags).toEqual(expect.arrayContaining(["web", "team=b", "spread-me", "metal.io/rack=r1", "metal.io/role=machine", `metal.io/primary-asn=${machine!.allocation!.asn}`]));
    expect(machine?.tags).not.toContain("team=a");
    // Responses carry the machine's history, not just its allocation.
    expect(machine?.events?.log[0]?.type).toBe(T.WAITING);
    expect(machine?.tags).not.toContain("metal.io/rack=forged");
    expect(machine?.allocation?.dnsServers).toEqual(["9.9.9.9"]);
    expect(machine?.allocation?.ntpServers).toEqual(["pool.ntp.org"]);
    const primary = machine!.allocation!.networks[0]!;
    // The static IPv4 replaces the automatic one of that family; IPv6 is still acquired.
    expect(primary.ips.filter((a) => !a.includes(":"))).toEqual([ip.ip]);
    expect(primary.ips.filter((a) => a.includes(":"))).toHaveLength(1);
    expect((await rows<{ machine_id: string }>(sql`select machine_id from ips where id = ${ip.id}`))[0]!.machine_id).toBe(hammer.id);

    // Freeing keeps the static IP for the project, detached.
    const freed = await tenant.delete({ id: hammer.id, project: "pb" });
    expect(freed.machine?.events?.log[0]?.type).toBe(T.MACHINE_RECLAIM);
    expect((await rows<{ machine_id: string | null }>(sql`select machine_id from ips where id = ${ip.id}`))[0]!.machine_id).toBeNull();
    expect((await server.client(AdminMachineService, server.adminToken).get({ id: hammer.id })).machine?.tags).toEqual([]);
  });

  it("refuses static IPs that are ephemeral, another project's, or already attached, and leaves the machine free", async () => {
    const hammer = await fixture.bootMachine("r2");
    const ephemeral = (await server.client(IPService, editorToken).create({ project: "pb", network: fixture.primary.pb, type: IpType.EPHEMERAL })).ip!;
    const foreign = (await server.client(IPService, server.adminToken).create({ project: "pa", network: fixture.primary.pa, type: IpType.STATIC })).ip!;
    const base = { project: "pb", partition: "p1", size: "s1", image: "debian-12", networks: [fixture.primary.pb], machineId: hammer.id };
    await expectCode(tenant.create({ ...base, ips: [ephemeral.ip] }), Code.InvalidArgument, "only static IPs");
    await expectCode(tenant.create({ ...base, ips: [foreign.ip] }), Code.NotFound);
    await expectCode(tenant.create({ ...base, ips: ["not-an-ip"] }), Code.InvalidArgument, "ips[0]");
    await expectCode(tenant.create({ ...base, dnsServers: ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"] }), Code.InvalidArgument, "dns_servers");
    await expectCode(tenant.create({ ...base, filesystemLayout: "no-such-layout" }), Code.NotFound);
    const after = await server.client(AdminMachineService, server.adminToken).get({ id: hammer.id });
    expect(after.machine?.allocation).toBeUndefined();
    expect((await rows(sql`select 1 from ips where machine_id = ${hammer.id}`)).length).toBe(0);
    expect((await rows(sql`select 1 from asns where owner = ${hammer.id}`)).length).toBe(0);
  });

  it("allocates a firewall into the underlay, with a firewall image only, and puts its ports into the default VRF", async () => {
    const hammer = await fixture.bootMachine("r1");
    const base = { project: "pb", partition: "p1", size: "s1", name: "fw", networks: [fixture.primary.pb], machineId: hammer.id, role: MachineRole.FIREWALL };
    await expectCode(tenant.create({ ...base, image: "firewall-3.0" }), Code.FailedPrecondition, "underlay");
    await server.client(AdminNetworks, server.adminToken).create({ id: "underlay-p1", type: NetworkType.UNDERLAY, partition: "p1", prefixes: ["10.255.0.0/24"] });
    await expectCode(tenant.create({ ...base, image: "debian-12" }), Code.NotFound);
    const { machine } = await tenant.create({ ...base, image: "firewall-3.0" });
    expect(machine?.allocation?.role).toBe(MachineRole.FIREWALL);
    const underlay = machine!.allocation!.networks.find((n) => n.network === "underlay-p1");
    expect(underlay?.ips).toHaveLength(1);
    expect(underlay!.ips[0]!.startsWith("10.255.0.")).toBe(true);
    await hammer.allocation;
    await server.client(BootService, fixture.infraToken).installationSucceeded({ partition: "p1", machineId: hammer.id, consolePassword: "fw", bootInfo: { ...BOOT_INFO, imageId: "firewall-3.0.20250101" } });
    expect(await portVrfs(hammer.id)).toEqual(["default", "default"]);
    const admin = server.client(AdminMachineService, server.adminToken);
    expect((await admin.list({ role: MachineRole.FIREWALL })).machines.map((m) => m.id)).toEqual([hammer.id]);
    expect((await admin.list({ role: MachineRole.MACHINE })).machines.map((m) => m.id)).not.toContain(hammer.id);
    await tenant.delete({ id: hammer.id, project: "pb" });
  });
});

describe("filesystem layout match", () => {
  it("tells whether a layout fits a registered machine's disks", async () => {
    const layouts = server.client(AdminLayouts, server.adminToken);
    const hammer = await fixture.bootMachine("r1");
    expect(await layouts.match({ id: "s1-default", machineId: hammer.id })).toMatchObject({ fits: true, problems: [] });
    await layouts.create({
      filesystemLayout: {
        id: "nvme-only",
        disks: [{ device: "/dev/nvme0n1", partitions: [{ number: 1, sizeMib: 0n, gptType: GptType.LINUX }] }],
        filesystems: [{ path: "/", device: "/dev/nvme0n1p1", format: Format.EXT4 }],
        constraints: { sizes: ["s9"], images: {} },
      },
    });
    const misfit = await layouts.match({ id: "nvme-only", machineId: hammer.id });
    expect(misfit.fits).toBe(false);
    expect(misfit.problems).toEqual(["disk /dev/nvme0n1 does not exist"]);
    await expectCode(layouts.match({ id: "s1-default", machineId: "nope" }), Code.InvalidArgument, "machine_id");
    await expectCode(layouts.match({ id: "no-such", machineId: hammer.id }), Code.NotFound);
  });
});

describe("images in use", () => {
  it("cannot be deleted while an allocation uses them, and can be once it is freed", async () => {
    const images = server.client(AdminImages, server.adminToken);
    await images.create({ id: "debian-11.0.20240101", url: "http://images.example/d11.tar", features: [ImageFeature.MACHINE] });
    const hammer = await fixture.bootMachine("r2");
    await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-11.0.20240101", networks: [fixture.primary.pb], machineId: hammer.id });
    await expectCode(images.delete({ id: "debian-11.0.20240101" }), Code.FailedPrecondition, "used by 1 allocated machine");
    await tenant.delete({ id: hammer.id, project: "pb" });
    expect((await images.delete({ id: "debian-11.0.20240101" })).image?.id).toBe("debian-11.0.20240101");
  });
});

describe("size reservation usage", () => {
  it("counts the project's allocated machines against its reservation, per partition", async () => {
    const reservations = server.client(AdminSizeReservations, server.adminToken);
    const created = (await reservations.create({ sizeId: "s1", project: "pb", partitionIds: ["p1"], amount: 2, name: "two for pb" })).sizeReservation!;
    expect((await reservations.get({ id: created.id })).sizeReservation?.name).toBe("two for pb");
    const usageOf = async () => (await reservations.usage({ project: "pb" })).usages.find((u) => u.reservationId === created.id)!;
    const before = await usageOf();
    const hammer = await fixture.bootMachine("r1");
    await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", networks: [fixture.primary.pb], machineId: hammer.id });
    const after = await usageOf();
    expect(after).toMatchObject({ partitionId: "p1", sizeId: "s1", amount: 2, projectAllocations: before.projectAllocations + 1 });
    expect(after.usedAmount).toBe(Math.min(2, before.projectAllocations + 1));
    await expectCode(reservations.usage({ project: "not a project!" }), Code.InvalidArgument, "project");
    await tenant.delete({ id: hammer.id, project: "pb" });
    expect((await usageOf()).projectAllocations).toBe(before.projectAllocations);
    await reservations.delete({ id: created.id });
  });
});

describe("the ASN of an allocation", () => {
  it("is claimed together with the allocation, and searched for when the random pick is taken", async () => {
    const hammer = await fixture.bootMachine("r2");
    // Every random pick in this allocation is the same number, so the ASN it would guess is known; take that one first.
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const { randomAsn } = await import("../../server/repositories/ipam-repository.js");
    const guess = randomAsn();
    await server.app.db.execute(sql`insert into asns values (${guess}, 'someone-else')`);
    try {
      const { machine } = await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", networks: [fixture.primary.pb], machineId: hammer.id });
      const asn = Number(machine!.allocation!.asn);
      expect(asn).not.toBe(guess);
      expect((await rows<{ owner: string }>(sql`select owner from asns where asn = ${asn}`))[0]!.owner).toBe(hammer.id);
      expect((await rows<{ owner: string }>(sql`select owner from asns where asn = ${guess}`))[0]!.owner).toBe("someone-else");
      expect(machine!.tags).toContain(`metal.io/primary-asn=${asn}`);
    } finally {
      vi.restoreAllMocks();
      await server.app.db.execute(sql`delete from asns where owner = 'someone-else'`);
    }
    await tenant.delete({ id: hammer.id, project: "pb" });
  });
});

describe("an allocated machine", () => {
  it("lists only the project's machines and updates description, tags and SSH keys with optimistic locking", async () => {
    const hammer = await fixture.bootMachine("r2");
    const machine = await installed(hammer, { tags: ["keep-me"] });
    const listed = await tenant.list({ project: "pb" });
    expect(listed.machines.map((m) => m.id)).toContain(hammer.id);
    expect(listed.machines.every((m) => m.allocation?.project === "pb")).toBe(true);
    const stranger = (await server.client(AdminTokens, server.adminToken).create({ subject: "st", roles: { projectRoles: { pa: ProjectRole.EDITOR } } })).secret;
    expect((await server.client(MachineService, stranger).list({ project: "pa" })).machines.map((m) => m.id)).not.toContain(hammer.id);
    await expectCode(server.client(MachineService, stranger).list({ project: "pb" }), Code.PermissionDenied);

    const version = (await tenant.get({ id: hammer.id, project: "pb" })).machine!.meta!.version;
    const updated = await tenant.update({ id: hammer.id, project: "pb", version, description: "the web server", tags: { values: ["new"] }, sshKeys: { values: [SSH_KEY] } });
    expect(updated.machine?.allocation?.description).toBe("the web server");
    expect(updated.machine?.allocation?.sshKeys).toEqual([SSH_KEY]);
    expect(updated.machine?.tags).toContain("new");
    expect(updated.machine?.tags).not.toContain("keep-me");
    expect(updated.machine?.tags).toContain(`metal.io/primary-asn=${machine.allocation!.asn}`);
    await expectCode(tenant.update({ id: hammer.id, project: "pb", version, description: "stale" }), Code.Aborted);
    await expectCode(tenant.update({ id: hammer.id, project: "pb", version: updated.machine!.meta!.version, sshKeys: { values: ["not a key"] } }), Code.InvalidArgument, "ssh_keys.values");
    expect((await tenant.get({ id: hammer.id, project: "pb" })).machine?.allocation?.description).toBe("the web server");
    await tenant.delete({ id: hammer.id, project: "pb" });
  });

  it("hands out the console password only after the installation, only with a reason", async () => {
    const hammer = await fixture.bootMachine("r1");
    await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", networks: [fixture.primary.pb], machineId: hammer.id });
    await expectCode(tenant.consolePassword({ id: hammer.id, project: "pb", reason: "debugging the boot" }), Code.FailedPrecondition, "no console password yet");
    await hammer.allocation;
    await server.client(BootService, fixture.infraToken).installationSucceeded({ partition: "p1", machineId: hammer.id, consolePassword: "pw-9", bootInfo: BOOT_INFO });
    await expectCode(tenant.consolePassword({ id: hammer.id, project: "pb", reason: "why" }), Code.InvalidArgument, "reason");
    expect((await tenant.consolePassword({ id: hammer.id, project: "pb", reason: "debugging the boot" })).consolePassword).toBe("pw-9");
    const viewer = (await server.client(AdminTokens, server.adminToken).create({ subject: "vw", roles: { projectRoles: { pb: ProjectRole.VIEWER } } })).secret;
    await expectCode(server.client(MachineService, viewer).consolePassword({ id: hammer.id, project: "pb", reason: "debugging the boot" }), Code.PermissionDenied);
    // A viewer may read the history, though.
    const history = await server.client(MachineService, viewer).events({ id: hammer.id, project: "pb" });
    expect(history.events?.log.map((e) => e.type)).toContain(T.WAITING);
    await tenant.delete({ id: hammer.id, project: "pb" });
  });

  it("reinstalls with another image: PXE, reset, Planned Reboot, the hammer gets the new image at once; success moves the ports back", async () => {
    const hammer = await fixture.bootMachine("r2");
    const machine = await installed(hammer);
    const before = await commands(hammer.id);
    const { machine: reinstalling } = await tenant.reinstall({ id: hammer.id, project: "pb", image: "debian-12.0.20250601" });
    expect(reinstalling?.allocation?.image).toBe("debian-12.0.20250601");
    expect(reinstalling?.allocation?.reinstalling).toBe(true);
    expect(reinstalling?.allocation?.installed).toBe(false);
    expect(reinstalling?.allocation?.asn).toBe(machine.allocation!.asn);
    expect((await commands(hammer.id)).slice(before.length)).toEqual(["BOOT_FROM_PXE", "RESET"]);
    expect(await portVrfs(hammer.id)).toEqual([null, null]);
    const admin = server.client(AdminMachineService, server.adminToken);
    expect((await admin.get({ id: hammer.id })).machine?.events?.log[0]?.type).toBe(T.PLANNED_REBOOT);
    await expectCode(tenant.reinstall({ id: hammer.id, project: "pb", image: "debian-12" }), Code.FailedPrecondition, "already being reinstalled");

    // The hammer boots again and, finding the machine allocated, gets the allocation from Wait right away.
    const boot = server.grpcClient(BootService, fixture.infraToken);
    for await (const msg of boot.wait({ partition: "p1", machineId: hammer.id })) {
      expect(msg.allocation?.image).toBe("debian-12.0.20250601");
      break;
    }
    await boot.installationSucceeded({ partition: "p1", machineId: hammer.id, consolePassword: "pw-2", bootInfo: { ...BOOT_INFO, imageId: "debian-12.0.20250601" } });
    const done = (await tenant.get({ id: hammer.id, project: "pb" })).machine!;
    expect(done.allocation?.reinstalling).toBe(false);
    expect(done.allocation?.installed).toBe(true);
    expect(await portVrfs(hammer.id)).toEqual([`vrf${machine.allocation!.networks[0]!.vrf}`, `vrf${machine.allocation!.networks[0]!.vrf}`]);
    await tenant.delete({ id: hammer.id, project: "pb" });
  });

  it("aborting a reinstall restores the previous image and boots it from disk again", async () => {
    const hammer = await fixture.bootMachine("r1");
    const machine = await installed(hammer);
    const boot = server.client(BootService, fixture.infraToken);
    await expectCode(boot.abortReinstall({ partition: "p1", machineId: hammer.id }), Code.FailedPrecondition, "not being reinstalled");
    await tenant.reinstall({ id: hammer.id, project: "pb", image: "debian-12.0.20250601" });
    const before = await commands(hammer.id);
    const aborted = await boot.abortReinstall({ partition: "p1", machineId: hammer.id, primaryDiskWiped: false });
    expect(aborted.bootInfo?.imageId).toBe("debian-12.0.20250101");
    const restored = (await tenant.get({ id: hammer.id, project: "pb" })).machine!;
    expect(restored.allocation?.image).toBe("debian-12.0.20250101");
    expect(restored.allocation?.reinstalling).toBe(false);
    expect((await commands(hammer.id)).slice(before.length)).toEqual(["BOOT_FROM_DISK"]);
    expect(await portVrfs(hammer.id)).toEqual([`vrf${machine.allocation!.networks[0]!.vrf}`, `vrf${machine.allocation!.networks[0]!.vrf}`]);
    await tenant.delete({ id: hammer.id, project: "pb" });
  });

  it("refuses to reinstall a locked machine, one still installing, or with an unknown image, and changes nothing", async () => {
    const hammer = await fixture.bootMachine("r2");
    await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12.0.20250101", networks: [fixture.primary.pb], machineId: hammer.id });
    await expectCode(tenant.reinstall({ id: hammer.id, project: "pb", image: "debian-12" }), Code.FailedPrecondition, "not finished its installation");
    await hammer.allocation;
    await server.client(BootService, fixture.infraToken).installationSucceeded({ partition: "p1", machineId: hammer.id, consolePassword: "x", bootInfo: BOOT_INFO });
    await expectCode(tenant.reinstall({ id: hammer.id, project: "pb", image: "ubuntu-24.04" }), Code.NotFound);
    await expectCode(tenant.reinstall({ id: hammer.id, project: "pb", image: "" }), Code.InvalidArgument, "image");
    await server.app.db.execute(sql`update machines set state = 'locked' where id = ${hammer.id}`);
    await expectCode(tenant.reinstall({ id: hammer.id, project: "pb", image: "debian-12" }), Code.FailedPrecondition, "locked");
    const still = (await tenant.get({ id: hammer.id, project: "pb" })).machine!;
    expect(still.allocation?.image).toBe("debian-12.0.20250101");
    expect(still.allocation?.reinstalling).toBe(false);
    await server.app.db.execute(sql`update machines set state = 'available' where id = ${hammer.id}`);
    await tenant.delete({ id: hammer.id, project: "pb" });
  });
});
