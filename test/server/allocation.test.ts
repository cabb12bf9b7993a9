import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { FilesystemLayoutService as AdminLayouts } from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImages } from "../../gen/metal/admin/v1/image_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { NetworkService as AdminNetworks } from "../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { SizeService as AdminSizes } from "../../gen/metal/admin/v1/size_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { Format, GptType } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageFeature } from "../../gen/metal/api/v1/image_pb.js";
import { MachineService, ProvisioningEventType as T, type MachineAllocation } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { SizeConstraintType } from "../../gen/metal/api/v1/size_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let tenantMachines: Client<typeof MachineService>;
let primaryA: string;
let primaryB: string;
const GiB = 2n ** 30n;
const waits = new Map<string, { allocation: Promise<MachineAllocation | undefined>; abort: AbortController; keepalives: number }>();

/** A machine that registered in `rack` and holds its Wait stream open, like metal-hammer. */
async function bootMachine(infra: string, rack: "r1" | "r2"): Promise<string> {
  const id = randomUUID();
  const leaves = rack === "r1" ? ["leaf01", "leaf02"] : ["leaf03", "leaf04"];
  const boot = server.grpcClient(BootService, infra);
  await server.client(EventService, infra).send({ partition: "p1", events: [T.PXE_BOOTING, T.PREPARING, T.REGISTERING].map((type) => ({ machineId: id, type })) });
  await boot.register({
    partition: "p1",
    machineId: id,
    hardware: {
      memory: 16n * GiB,
      cpus: [{ model: "Xeon", cores: 4, threads: 8 }],
      disks: [{ name: "/dev/sda", size: 240_000_000_000n }],
      nics: leaves.map((l, i) => ({ name: `eth${i}`, mac: `0c:c4:7a:00:00:0${i}`, neighbors: [{ hostname: l, port: "swp1" }] })),
    },
  });
  await server.client(EventService, infra).send({ partition: "p1", events: [{ machineId: id, type: T.WAITING }] });
  const abort = new AbortController();
  const entry = { abort, keepalives: 0, allocation: Promise.resolve<MachineAllocation | undefined>(undefined) };
  entry.allocation = (async () => {
    try {
      for await (const msg of boot.wait({ partition: "p1", machineId: id }, { signal: abort.signal })) {
        if (msg.allocation) return msg.allocation;
        entry.keepalives++;
      }
    } catch {
      return undefined;
    }
    return undefined;
  })();
  waits.set(id, entry);
  return id;
}

/** Waits until the server has marked the machine as waiting. */
async function untilWaiting(id: string) {
  const admin = server.client(AdminMachineService, server.adminToken);
  for (let i = 0; i < 100; i++) {
    if ((await admin.get({ id })).machine?.waiting) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`machine ${id} never started waiting`);
}

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: 3_000, recheckMs: 1_000 } });
  const admin = server.adminToken;
  await server.client(AdminPartitions, admin).create({ id: "p1" });
  await server.client(AdminSizes, admin).create({
    id: "s1",
    constraints: [
      { type: SizeConstraintType.CORES, min: 4n, max: 4n },
      { type: SizeConstraintType.MEMORY, min: 16n * GiB, max: 16n * GiB },
      { type: SizeConstraintType.STORAGE, min: 1n, max: 500_000_000_000n, identifier: "/dev/sd*" },
    ],
  });
  await server.client(AdminImages, admin).create({ id: "debian-12.0.20250101", url: "http://images.example/debian.tar", features: [ImageFeature.MACHINE] });
  await server.client(AdminLayouts, admin).create({
    filesystemLayout: {
      id: "s1-default",
      disks: [{ device: "/dev/sda", partitions: [{ number: 1, sizeMib: 512n, gptType: GptType.BOOT }, { number: 2, sizeMib: 0n, gptType: GptType.LINUX }] }],
      filesystems: [{ path: "/boot/efi", device: "/dev/sda1", format: Format.VFAT }, { path: "/", device: "/dev/sda2", format: Format.EXT4 }],
      constraints: { sizes: ["s1"], images: {} },
    },
  });
  await server.client(AdminNetworks, admin).create({ id: "super", type: NetworkType.SUPER, partition: "p1", prefixes: ["10.0.0.0/16", "2001:db8::/48"], defaultChildPrefixLength: { ipv4: 24, ipv6: 64 } });
  await server.client(MdTenantService, admin).create({ tenant: { meta: { id: "t" }, name: "t" } });
  await server.client(MdProjectService, admin).create({ project: { meta: { id: "pa" }, name: "a", tenantId: "t", quotas: { machine: { max: 2 } } } });
  await server.client(MdProjectService, admin).create({ project: { meta: { id: "pb" }, name: "b", tenantId: "t" } });
  primaryA = (await server.client(NetworkService, admin).create({ project: "pa", partition: "p1" })).network!.id;
  primaryB = (await server.client(NetworkService, admin).create({ project: "pb", partition: "p1" })).network!.id;
  const infra = (await server.client(AdminTokens, admin).create({ subject: "p1-agents", roles: { infraPartition: "p1" } })).secret;
  for (const [id, rack] of [["leaf01", "r1"], ["leaf02", "r1"], ["leaf03", "r2"], ["leaf04", "r2"]] as const) {
    await server.client(SwitchService, infra).register({ partition: "p1", id, rack, nics: [{ name: "swp1" }] });
  }
  // Two machines per rack; the wiring check only looks at each machine's own LLDP neighbours.
  for (const rack of ["r1", "r1", "r2", "r2"] as const) await untilWaiting(await bootMachine(infra, rack));
  tenantMachines = server.client(MachineService, admin);
});

afterAll(() => {
  for (const w of waits.values()) w.abort.abort();
});

const request = (project: string, network: string, name: string) => ({ project, partition: "p1", size: "s1", image: "debian-12", name, networks: [network] });

describe("machine allocation", () => {
  let first: { id: string; rack: string };

  it("allocates a waiting machine with IPs of every family, an ASN, image and layout, and tells its Wait stream at once", async () => {
    const started = Date.now();
    const { machine } = await tenantMachines.create(request("pa", primaryA, "web-1"));
    const a = machine!.allocation!;
    expect(a).toMatchObject({ project: "pa", image: "debian-12.0.20250101", filesystemLayout: "s1-default", hostname: "web-1" });
    expect(a.asn).toBeGreaterThan(4_210_000_000n);
    expect(a.networks[0]).toMatchObject({ network: primaryA, primary: true });
    expect(a.networks[0]!.ips).toEqual([expect.stringMatching(/^10\.0\./), expect.stringMatching(/^2001:db8:/)]);
    const delivered = await waits.get(machine!.id)!.allocation;
    expect(delivered?.uuid).toBe(a.uuid);
    expect(Date.now() - started).toBeLessThan(1_000); // through the bus, not the 1 s recheck
    first = { id: machine!.id, rack: machine!.rack };
  });

  it("spreads a project's machines over racks", async () => {
    const { machine } = await tenantMachines.create(request("pa", primaryA, "web-2"));
    expect(machine!.rack).not.toBe(first.rack);
  });

  it("enforces the machine quota", async () => {
    await expectCode(tenantMachines.create(request("pa", primaryA, "web-3")), Code.ResourceExhausted, 'project "pa" has reached its quota of 2 machine(s)');
  });

  it("never hands one machine out twice under parallel allocations", async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => tenantMachines.create(request("pb", primaryB, `db-${i}`))));
    const won = results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<{ machine?: { id: string } }>).value.machine!.id);
    expect(won).toHaveLength(2);
    expect(new Set(won).size).toBe(2);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.ResourceExhausted);
    const listed = await tenantMachines.list({ project: "pb" });
    expect(listed.machines.map((m) => m.id).sort()).toEqual([...won].sort());
  });

  it("refuses bad requests and networks of other projects, leaving nothing behind", async () => {
    await expectCode(tenantMachines.create({ ...request("pb", primaryA, "x") }), Code.InvalidArgument, "networks[0]: must be a private network of project");
    await expectCode(tenantMachines.create({ ...request("pb", primaryB, "x"), image: "fedora" }), Code.NotFound, 'image "fedora"');
    await expectCode(tenantMachines.create({ ...request("pb", primaryB, "x"), sshKeys: ["not a key"] }), Code.InvalidArgument, "ssh_keys[0]");
    await expectCode(tenantMachines.create({ ...request("pb", primaryB, "Bad Name") }), Code.InvalidArgument, "name");
    await expectCode(tenantMachines.create({ ...request("pb", primaryB, "x"), networks: [] }), Code.InvalidArgument, "networks");
    // No machine waits any more: nothing to allocate, and no IP or ASN was taken by the failed attempt.
    await expectCode(tenantMachines.create(request("pb", primaryB, "late")), Code.ResourceExhausted, "no s1 machine is waiting");
    const ips = await server.app.db.execute(sql`select count(*)::int as n from ips where machine_id is not null`);
    expect((ips as unknown as { rows: { n: number }[] }).rows[0]!.n).toBe(8); // 4 machines x 2 families
  });

  it("keeps streams alive while waiting and clears the flag when a stream ends", async () => {
    const infra = (await server.client(AdminTokens, server.adminToken).create({ subject: "p1-agents-2", roles: { infraPartition: "p1" } })).secret;
    const id = await bootMachine(infra, "r1");
    await untilWaiting(id);
    await new Promise((r) => setTimeout(r, 350));
    expect(waits.get(id)!.keepalives).toBeGreaterThanOrEqual(2);
    waits.get(id)!.abort.abort();
    const admin = server.client(AdminMachineService, server.adminToken);
    for (let i = 0; i < 50 && (await admin.get({ id })).machine?.waiting; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await admin.get({ id })).machine?.waiting).toBe(false);
    await expectCode(tenantMachines.create(request("pb", primaryB, "nobody-waits")), Code.ResourceExhausted);
  });
});
