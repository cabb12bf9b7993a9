import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
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
import { type MachineAllocation, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { SizeConstraintType } from "../../gen/metal/api/v1/size_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { eventually } from "./eventually.js";
import type { TestServer } from "./server-launch.js";

const GiB = 2n ** 30n;

/** The stored hardware of an s1 machine, for tests and benches that insert waiting machines directly. */
export const S1_HARDWARE_JSON = JSON.stringify({
  memoryBytes: 16 * 2 ** 30,
  cpus: [{ vendor: "Intel", model: "Xeon", cores: 4, threads: 8 }],
  disks: [{ name: "/dev/sda", sizeBytes: 240_000_000_000 }],
  nics: [],
  gpus: [],
});

/**
 * Registered s1 machines of p1 whose hammers wait, as their Wait streams and
 * events would leave them (a lease an hour long, Alive), written directly;
 * alternately in racks r1 and r2. Returns their ids.
 */
export async function insertWaitingMachines(server: TestServer, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  await server.app.db.execute(sql`
    insert into machines (id, partition_id, size_id, rack_id, waiting_until, hardware)
    select id, 'p1', 's1', case when n % 2 = 0 then 'r1' else 'r2' end, now() + interval '1 hour', ${S1_HARDWARE_JSON}::jsonb
    from jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb) with ordinality as t(id, n)`);
  await server.app.db.execute(sql`
    insert into machine_events (machine_id, liveliness, events, last_event_time)
    select id, 'Alive', '[]'::jsonb, now() from jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb) as t(id)`);
  return ids;
}

/** A machine playing metal-hammer: registered, waiting on its open Wait stream. */
export interface WaitingMachine {
  id: string;
  allocation: Promise<MachineAllocation | undefined>;
  abort: AbortController;
  keepalives: number;
}

export interface PartitionFixture {
  infraToken: string;
  /** Private networks of the projects "pa" (machine quota 2) and "pb" (no quota). */
  primary: { pa: string; pb: string };
  bootMachine(rack: "r1" | "r2"): Promise<WaitingMachine>;
  stopAll(): void;
}

/**
 * Partition p1 with what allocation needs: size s1, image debian-12.0.20250101,
 * a layout, a super network, projects pa and pb with private networks, and
 * two leaf pairs (racks r1, r2).
 */
export async function setUpPartition(server: TestServer): Promise<PartitionFixture> {
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
      disks: [
        {
          device: "/dev/sda",
          wipeOnReinstall: true,
          partitions: [
            { number: 1, sizeMib: 512n, gptType: GptType.BOOT },
            { number: 2, sizeMib: 0n, gptType: GptType.LINUX },
          ],
        },
      ],
      filesystems: [
        { path: "/boot/efi", device: "/dev/sda1", format: Format.VFAT },
        { path: "/", device: "/dev/sda2", format: Format.EXT4 },
      ],
      constraints: { sizes: ["s1"], images: {} },
    },
  });
  await server.client(AdminNetworks, admin).create({ id: "super", type: NetworkType.SUPER, partition: "p1", prefixes: ["10.0.0.0/16", "2001:db8::/48"], defaultChildPrefixLength: { ipv4: 24, ipv6: 64 } });
  await server.client(MdTenantService, admin).create({ tenant: { meta: { id: "t" }, name: "t" } });
  await server.client(MdProjectService, admin).create({ project: { meta: { id: "pa" }, name: "a", tenantId: "t", quotas: { machine: { max: 2 } } } });
  await server.client(MdProjectService, admin).create({ project: { meta: { id: "pb" }, name: "b", tenantId: "t" } });
  const primary = {
    pa: (await server.client(NetworkService, admin).create({ project: "pa", partition: "p1" })).network!.id,
    pb: (await server.client(NetworkService, admin).create({ project: "pb", partition: "p1" })).network!.id,
  };
  const infraToken = (await server.client(AdminTokens, admin).create({ subject: "p1-agents", roles: { infraPartition: "p1" } })).secret;
  for (const [id, rack] of [
    ["leaf01", "r1"],
    ["leaf02", "r1"],
    ["leaf03", "r2"],
    ["leaf04", "r2"],
  ] as const) {
    await server.client(SwitchService, infraToken).register({ partition: "p1", id, rack, nics: [{ name: "swp1" }] });
  }
  const machines: WaitingMachine[] = [];

  async function untilWaiting(id: string) {
    const adminMachines = server.client(AdminMachineService, admin);
    await eventually(`machine ${id} to start waiting`, async () => (await adminMachines.get({ id })).machine?.waiting);
  }

  return {
    infraToken,
    primary,
    /** Plays metal-hammer: Dhcp, Preparing, Register, Registering, Waiting, then holds Wait open. */
    async bootMachine(rack) {
      const id = randomUUID();
      const leaves = rack === "r1" ? ["leaf01", "leaf02"] : ["leaf03", "leaf04"];
      const boot = server.grpcClient(BootService, infraToken);
      const events = server.client(EventService, infraToken);
      await boot.dhcp({ partition: "p1", machineId: id });
      await events.send({ partition: "p1", events: [{ machineId: id, type: T.PREPARING }] });
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
      await events.send({ partition: "p1", events: [T.REGISTERING, T.WAITING].map((type) => ({ machineId: id, type })) });
      const machine: WaitingMachine = { id, abort: new AbortController(), keepalives: 0, allocation: Promise.resolve(undefined) };
      machine.allocation = (async () => {
        try {
          for await (const msg of boot.wait({ partition: "p1", machineId: id }, { signal: machine.abort.signal })) {
            if (msg.allocation) return msg.allocation;
            machine.keepalives++;
          }
        } catch {
          return undefined;
        }
        return undefined;
      })();
      machines.push(machine);
      await untilWaiting(id);
      return machine;
    },
    stopAll() {
      for (const m of machines) m.abort.abort();
    },
  };
}
