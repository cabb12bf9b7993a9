import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { sql } from "drizzle-orm";
import { ProjectService as MdProjects } from "../../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenants } from "../../../gen/masterdata/v1/tenant_pb.js";
import { PartitionService as AdminPartitions } from "../../../gen/metal/admin/v1/partition_pb.js";
import { SizeImageConstraintService as AdminConstraints } from "../../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { SizeReservationService as AdminReservations } from "../../../gen/metal/admin/v1/size_reservation_pb.js";
import { TokenService as AdminTokens } from "../../../gen/metal/admin/v1/token_pb.js";
import { AdminRole } from "../../../gen/metal/api/v1/common_pb.js";
import { IPService } from "../../../gen/metal/api/v1/ip_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../../gen/metal/api/v1/machine_pb.js";
import type { TokenRolesSchema } from "../../../gen/metal/api/v1/token_pb.js";
import { BootService } from "../../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../../gen/metal/infra/v1/event_pb.js";
import { insertWaitingMachines, type PartitionFixture, setUpPartition } from "../../helpers/partition-fixture.js";
import type { TestServer } from "../../helpers/test-server.js";
import type { World } from "./oracle.js";
import { OTHER, ROLES, THIS } from "./roles.js";

/** A metal-hammer: its machine id, MACs and the credential pixie's Boot handed out. */
export interface Hammer {
  id: string;
  macs: string[];
  credential: string;
}

/** Everything the requests of the matrix refer to, made by an operator admin before the first case. */
export interface MatrixWorld extends World {
  server: TestServer;
  fixture: PartitionFixture;
  /** The token of each role by name; undefined for "none". */
  tokens: Map<string, string | undefined>;
  hammers: Record<"M" | "M2", Hammer>;
  /** A machine allocated to pa (reads only). */
  allocated: string;
  /** An IP of pa (reads only). */
  ip: string;
  /** A size reservation of pa (reads only). */
  reservation: string;
  /** A size with an image constraint (reads only). */
  constrainedSize: string;
  /** A fresh name for anything a case creates. */
  fresh(prefix: string): string;
  newMac(): string;
  /** A machine of pa whose installation succeeded (reads only). */
  installed: string;
  /** A machine allocated to pa, made for one case that changes or frees it. */
  allocateFresh(): Promise<string>;
  /** The same, installed. */
  installFresh(): Promise<string>;
}

let macCounter = 0;
const newMac = () => {
  const n = ++macCounter;
  return `0c:c4:7a:d0:${((n >> 8) & 0xff).toString(16).padStart(2, "0")}:${(n & 0xff).toString(16).padStart(2, "0")}`;
};

/** Hardware that fits no size, so a hammer of the matrix is never allocated. */
export const hammerHardware = (macs: readonly string[]) => ({
  memory: 2n * 2n ** 30n,
  cpus: [{ model: "Atom", cores: 1, threads: 1 }],
  disks: [{ name: "/dev/sda", size: 10_000_000_000n }],
  nics: macs.map((mac, i) => ({ name: `eth${i}`, mac, neighbors: [{ hostname: i === 0 ? "leaf01" : "leaf02", port: "swp1" }] })),
});

/** A machine of p1 that booted (its first-boot credential) and registered itself with it. */
async function bootHammer(server: TestServer, infraToken: string): Promise<Hammer> {
  const id = randomUUID();
  const macs = [newMac(), newMac()];
  const { machineCredential } = await server.client(BootService, infraToken).boot({ partition: THIS.partition, mac: macs[0]!, uuid: id });
  const events = server.client(EventService, machineCredential);
  await events.send({ partition: THIS.partition, events: [{ machineId: id, type: T.PREPARING }] });
  await server.client(BootService, machineCredential).register({ partition: THIS.partition, machineId: id, hardware: hammerHardware(macs) });
  return { id, macs, credential: machineCredential };
}

const BOOT_INFO = { imageId: "debian-12.0.20250101", primaryDisk: "/dev/sda", osPartition: "/dev/sda2", kernel: "/boot/vmlinuz", initrd: "/boot/initrd", cmdline: "root=/dev/sda2", bootloaderId: "debian" };

type Roles = MessageInitShape<typeof TokenRolesSchema>;

export async function buildWorld(server: TestServer): Promise<MatrixWorld> {
  const admin = server.adminToken;
  const fixture = await setUpPartition(server);
  // pa's machine quota of 2 would stop the allocations the cases make.
  await server.client(MdProjects, admin).update({ project: { meta: { id: THIS.project, version: 1n }, name: "a", tenantId: THIS.tenant } });
  await server.client(MdTenants, admin).create({ tenant: { meta: { id: OTHER.tenant }, name: OTHER.tenant } });
  await server.client(MdProjects, admin).create({ project: { meta: { id: OTHER.project }, name: "z", tenantId: OTHER.tenant } });
  await server.client(AdminPartitions, admin).create({ id: OTHER.partition });

  const mint = async (subject: string, roles: Roles) => (await server.client(AdminTokens, admin).create({ subject, roles })).secret;
  const hammers = { M: await bootHammer(server, fixture.infraToken), M2: await bootHammer(server, fixture.infraToken) };
  const tokens = new Map<string, string | undefined>();
  for (const role of ROLES) {
    const c = role.caller;
    const subject = `matrix-${role.name.replace(/[^a-z0-9]+/gi, "-")}`;
    if (c.kind === "none") tokens.set(role.name, undefined);
    else if (c.kind === "garbage") tokens.set(role.name, "not-a-token");
    else if (c.kind === "operator") tokens.set(role.name, c.level === AdminRole.ADMIN ? admin : await mint(subject, { adminRole: c.level }));
    else if (c.kind === "tenant") tokens.set(role.name, await mint(subject, { tenantRoles: { [c.tenant]: c.level } }));
    else if (c.kind === "project") tokens.set(role.name, await mint(subject, { projectRoles: { [c.project]: c.level } }));
    else if (c.kind === "infra") tokens.set(role.name, c.partition === THIS.partition ? fixture.infraToken : await mint(subject, { infraPartition: c.partition }));
    else tokens.set(role.name, hammers[c.machine].credential);
  }

  let counter = 0;
  const fresh = (prefix: string) => `${prefix}${++counter}`;
  const allocateFresh = async () => {
    const [id] = await insertWaitingMachines(server, 1);
    await server.client(MachineService, admin).create({
      project: THIS.project,
      partition: THIS.partition,
      size: "s1",
      image: "debian-12.0.20250101",
      name: fresh("m"),
      networks: [fixture.primary.pa],
      machineId: id,
    });
    return id!;
  };
  const installFresh = async () => {
    const id = await allocateFresh();
    await server.client(BootService, fixture.infraToken).installationSucceeded({ partition: THIS.partition, machineId: id, consolePassword: "matrix-password", bootInfo: BOOT_INFO });
    return id;
  };
  const allocated = await allocateFresh();
  const installed = await installFresh();
  const ip = (await server.client(IPService, admin).create({ project: THIS.project, network: fixture.primary.pa, name: "read-me" })).ip!.id;
  const reservation = (await server.client(AdminReservations, admin).create({ name: "r", sizeId: "s1", project: THIS.project, partitionIds: [THIS.partition], amount: 1 })).sizeReservation!.id;
  await server.client(AdminConstraints, admin).create({ size: "s-constrained", images: { debian: ">= 12" } });
  const world: MatrixWorld = {
    server,
    fixture,
    tokens,
    hammers,
    allocated,
    ip,
    reservation,
    constrainedSize: "s-constrained",
    fresh,
    newMac,
    allocateFresh,
    installed,
    installFresh,
    tenantOf: { pa: THIS.tenant, pb: THIS.tenant, [OTHER.project]: OTHER.tenant },
    machines: { M: { id: hammers.M.id, partition: THIS.partition }, M2: { id: hammers.M2.id, partition: THIS.partition } },
  };
  return world;
}

/** A machine row nobody ever heard from (no events): what admin MachineService.Delete may remove. */
export async function insertSilentMachine(server: TestServer): Promise<string> {
  const id = randomUUID();
  await server.app.db.execute(sql`insert into machines (id, partition_id) values (${id}, ${THIS.partition})`);
  return id;
}
