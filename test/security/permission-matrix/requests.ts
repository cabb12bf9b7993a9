import { randomUUID } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { ProjectMemberService as MdProjectMembers } from "../../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService as MdProjects } from "../../../gen/masterdata/v1/project_pb.js";
import { TenantMemberService as MdTenantMembers } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MdTenants } from "../../../gen/masterdata/v1/tenant_pb.js";
import { AuditService as AdminAudit } from "../../../gen/metal/admin/v1/audit_pb.js";
import { FilesystemLayoutService as AdminLayouts } from "../../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImages } from "../../../gen/metal/admin/v1/image_pb.js";
import { BmcCommand } from "../../../gen/metal/admin/v1/machine_pb.js";
import { NetworkService as AdminNetworks } from "../../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitions } from "../../../gen/metal/admin/v1/partition_pb.js";
import { SizeImageConstraintService as AdminConstraints } from "../../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { SizeService as AdminSizes } from "../../../gen/metal/admin/v1/size_pb.js";
import { SizeReservationService as AdminReservations } from "../../../gen/metal/admin/v1/size_reservation_pb.js";
import { SwitchPortState } from "../../../gen/metal/admin/v1/switch_pb.js";
import { TokenService as AdminTokens } from "../../../gen/metal/admin/v1/token_pb.js";
import { Format, GptType } from "../../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageFeature } from "../../../gen/metal/api/v1/image_pb.js";
import { IPService } from "../../../gen/metal/api/v1/ip_pb.js";
import { MachineBootDevice, MachinePowerAction, MachineService, MachineState, ProvisioningEventType as T } from "../../../gen/metal/api/v1/machine_pb.js";
import { NetworkService, NetworkType } from "../../../gen/metal/api/v1/network_pb.js";
import { SizeConstraintType } from "../../../gen/metal/api/v1/size_pb.js";
import { TokenService } from "../../../gen/metal/api/v1/token_pb.js";
import { SwitchService as InfraSwitches } from "../../../gen/metal/infra/v1/switch_pb.js";
import { insertWaitingMachines } from "../../helpers/partition-fixture.js";
import { methodName } from "./methods.js";
import { THIS } from "./roles.js";
import { TENANCY_AUTHORIZATION_ONLY, TENANCY_VALID } from "./tenancy-requests.js";
import { hammerHardware, insertSilentMachine, type MatrixWorld } from "./world.js";

/** Makes the request of one case; `token` is the caller's (undefined without one). Runs before every case. */
type Factory = (w: MatrixWorld, token: string | undefined) => unknown;

const IMAGE = "debian-12.0.20250101";

/**
 * Methods whose allowed calls only have to pass authorization (any answer
 * but Unauthenticated and PermissionDenied), with why a fully valid request
 * is not made. Their request is the one in NEAR_VALID, else the scope-only
 * one (see scopeRequest).
 */
export const AUTHORIZATION_ONLY: Record<string, string> = {
  "metal.api.v1.ConsoleService.Attach": "a serial console needs a metal-bmc relaying the machine's BMC",
  "metal.api.v1.ConsoleService.Input": "needs an open console session (Attach)",
  "metal.infra.v1.BootService.AbortReinstall": "needs machine M (the machine credential's) in a reinstallation, which only an allocated machine can start",
  "metal.infra.v1.BootService.InstallationSucceeded": "needs an installing machine; a success would void the machine credentials of the matrix",
  "metal.infra.v1.BMCService.Session": "bidi session: the single scope-only message is no valid hello",
  "metal.infra.v1.SwitchService.Session": "bidi session: the single scope-only message is no valid hello",
  "metal.infra.v1.ConsoleService.Relay": "bidi relay: the single scope-only message opens no console",
  "metal.internal.v1.ReplicaService.Console": "replica-only: no role of the matrix is allowed",
  "metal.internal.v1.ReplicaService.ConsoleInput": "replica-only: no role of the matrix is allowed",
  "metal.api.v1.SignInService.Exchange": "needs proof of a sign-in at an OpenID Connect issuer; the matrix's server trusts none (test/e2e/oidc-signin.test.ts)",
  ...TENANCY_AUTHORIZATION_ONLY,
};

/** Requests of authorization-only methods that get as far as their handler can take them. */
const NEAR_VALID: Record<string, Factory> = {
  "metal.api.v1.ConsoleService.Attach": (w) => ({ machineId: w.installed, project: THIS.project, columns: 80, rows: 24 }),
};

/** A request naming only "this" target: project pa, tenant t, partition p1, machine M. */
export function scopeRequest(method: DescMethod, w: MatrixWorld): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  for (const f of method.input.fields) {
    if (f.name === "project") r.project = THIS.project;
    if (f.name === "tenant") r.tenant = THIS.tenant;
    if (f.name === "partition") r.partition = THIS.partition;
    if (f.name === "machine_id") r.machineId = w.hammers.M.id;
    if (f.name === "events") r.events = [{ machineId: w.hammers.M.id, type: T.WAITING }];
  }
  return r;
}

const admin = (w: MatrixWorld) => w.server.adminToken;
/** A token minted from the caller's, where the caller can mint; a stranger's id otherwise (refused before it is looked up). */
const ownChildToken = async (w: MatrixWorld, token: string | undefined) => {
  const child =
    token &&
    (await w.server
      .client(TokenService, token)
      .create({ description: "child" })
      .catch(() => undefined));
  return child ? child.token!.id : randomUUID();
};
const pa = THIS.project;
const p1 = THIS.partition;

/** A switch of its own rack in p1, registered by p1's infra token. */
async function freshSwitch(w: MatrixWorld, rack = w.fresh("rack")): Promise<string> {
  const id = w.fresh("sw");
  await w.server.client(InfraSwitches, w.fixture.infraToken).register({ partition: p1, id, rack, nics: [{ name: "swp1" }] });
  return id;
}

const freshPartition = async (w: MatrixWorld) => (await w.server.client(AdminPartitions, admin(w)).create({ id: w.fresh("pp") })).partition!.id;
/** A size no machine of the matrix fits. */
const sizeRequest = (w: MatrixWorld) => {
  // Sizes must not overlap: each gets a core count of its own.
  const cores = BigInt(1000 + Number(w.fresh("")));
  return { id: w.fresh("sz"), constraints: [{ type: SizeConstraintType.CORES, min: cores, max: cores }] };
};
const freshSize = async (w: MatrixWorld) => (await w.server.client(AdminSizes, admin(w)).create(sizeRequest(w))).size!.id;
const freshImage = async (w: MatrixWorld) => {
  const id = `firewall-3.0.${w.fresh("")}`;
  await w.server.client(AdminImages, admin(w)).create({ id, url: "http://images.example/fw.tar", features: [ImageFeature.FIREWALL] });
  return id;
};
const freshExternal = async (w: MatrixWorld) => {
  const n = Number(w.fresh(""));
  const id = `ext${n}`;
  await w.server.client(AdminNetworks, admin(w)).create({ id, type: NetworkType.EXTERNAL, prefixes: [`172.${16 + (n >> 8)}.${n & 0xff}.0/24`] });
  return id;
};
const freshLayout = (w: MatrixWorld, size: string) => ({
  id: w.fresh("layout"),
  disks: [{ device: "/dev/sda", partitions: [{ number: 1, sizeMib: 0n, gptType: GptType.LINUX }] }],
  filesystems: [{ path: "/", device: "/dev/sda1", format: Format.EXT4 }],
  constraints: { sizes: [size], images: {} },
});
const freshPaIp = async (w: MatrixWorld) => (await w.server.client(IPService, admin(w)).create({ project: pa, network: w.fixture.primary.pa })).ip!.id;
const freshPaNetwork = async (w: MatrixWorld) => (await w.server.client(NetworkService, admin(w)).create({ project: pa, partition: p1 })).network!.id;
const freshTenant = async (w: MatrixWorld) => {
  const id = w.fresh("tt");
  await w.server.client(MdTenants, admin(w)).create({ tenant: { meta: { id }, name: id } });
  return id;
};
const freshProject = async (w: MatrixWorld) => {
  const id = w.fresh("pp");
  await w.server.client(MdProjects, admin(w)).create({ project: { meta: { id }, name: id, tenantId: THIS.tenant } });
  return id;
};

/** A tenant's membership in t (a new member tenant each time). */
const tenantMembership = async (w: MatrixWorld) => ({ tenantId: THIS.tenant, memberId: await freshTenant(w), role: 1 });
/** A tenant's membership in pa. */
const projectMembership = async (w: MatrixWorld) => ({ projectId: pa, tenantId: await freshTenant(w), role: 1 });
const freshTenantMember = async (w: MatrixWorld) => {
  const m = await tenantMembership(w);
  return { ...m, id: (await w.server.client(MdTenantMembers, admin(w)).create({ tenantMember: m })).tenantMember!.meta!.id };
};
const freshProjectMember = async (w: MatrixWorld) => {
  const m = await projectMembership(w);
  return { ...m, id: (await w.server.client(MdProjectMembers, admin(w)).create({ projectMember: m })).projectMember!.meta!.id };
};

/** Valid requests: an allowed call must succeed. Mutations act on things made for the case alone. */
export const VALID: Record<string, Factory> = {
  ...TENANCY_VALID,
  // metal.api.v1
  "metal.api.v1.AuditService.List": () => ({ project: pa }),
  "metal.api.v1.FilesystemLayoutService.Get": () => ({ id: "s1-default" }),
  "metal.api.v1.FilesystemLayoutService.List": () => ({}),
  "metal.api.v1.FilesystemLayoutService.Try": () => ({ size: "s1", image: IMAGE }),
  "metal.api.v1.HealthService.Get": () => ({}),
  "metal.api.v1.ImageService.Get": () => ({ id: IMAGE }),
  "metal.api.v1.ImageService.List": () => ({}),
  "metal.api.v1.ImageService.Latest": () => ({ os: "debian" }),
  "metal.api.v1.IPService.Get": (w) => ({ id: w.ip, project: pa }),
  "metal.api.v1.IPService.List": () => ({ project: pa }),
  "metal.api.v1.IPService.Create": (w) => ({ project: pa, network: w.fixture.primary.pa }),
  "metal.api.v1.IPService.Update": async (w) => ({ id: await freshPaIp(w), project: pa, version: 1n, name: "renamed" }),
  "metal.api.v1.IPService.Delete": async (w) => ({ id: await freshPaIp(w), project: pa }),
  "metal.api.v1.MachineService.Get": (w) => ({ id: w.allocated, project: pa }),
  "metal.api.v1.MachineService.List": () => ({ project: pa }),
  "metal.api.v1.MachineService.Create": async (w) => {
    const [id] = await insertWaitingMachines(w.server, 1);
    return { project: pa, partition: p1, size: "s1", image: IMAGE, name: w.fresh("m"), networks: [w.fixture.primary.pa], machineId: id };
  },
  "metal.api.v1.MachineService.Delete": async (w) => ({ id: await w.allocateFresh(), project: pa }),
  "metal.api.v1.MachineService.Update": async (w) => {
    const { machine } = await w.server.client(MachineService, admin(w)).get({ id: w.allocated, project: pa });
    return { id: w.allocated, project: pa, version: machine!.meta!.version, description: "updated" };
  },
  "metal.api.v1.MachineService.Reinstall": async (w) => ({ id: await w.installFresh(), project: pa, image: IMAGE }),
  "metal.api.v1.MachineService.ConsolePassword": (w) => ({ id: w.installed, project: pa, reason: "permission matrix" }),
  "metal.api.v1.MachineService.Events": (w) => ({ id: w.allocated, project: pa }),
  "metal.api.v1.MachineService.Watch": () => ({ project: pa }),
  // Power on the allocated machine, the boot device on the installed one (the installation owns it before): each stays under the per-machine command bound.
  "metal.api.v1.MachineService.Power": (w) => ({ id: w.allocated, project: pa, action: MachinePowerAction.ON }),
  "metal.api.v1.MachineService.BootDevice": (w) => ({ id: w.installed, project: pa, device: MachineBootDevice.DISK }),
  "metal.api.v1.MachineService.GetBmc": (w) => ({ id: w.allocated, project: pa }),
  "metal.api.v1.NetworkService.Get": (w) => ({ id: w.fixture.primary.pa, project: pa }),
  "metal.api.v1.NetworkService.List": () => ({ project: pa }),
  "metal.api.v1.NetworkService.Create": () => ({ project: pa, partition: p1 }),
  "metal.api.v1.NetworkService.Update": async (w) => ({ id: await freshPaNetwork(w), project: pa, version: 1n, description: "updated" }),
  "metal.api.v1.NetworkService.Delete": async (w) => ({ id: await freshPaNetwork(w), project: pa }),
  "metal.api.v1.PartitionService.Get": () => ({ id: p1 }),
  "metal.api.v1.PartitionService.List": () => ({}),
  "metal.api.v1.PartitionService.Capacity": () => ({ partition: p1 }),
  "metal.api.v1.SizeImageConstraintService.Try": () => ({ size: "s1", image: IMAGE }),
  "metal.api.v1.SizeService.Get": () => ({ id: "s1" }),
  "metal.api.v1.SizeService.List": () => ({}),
  "metal.api.v1.SizeReservationService.Get": (w) => ({ id: w.reservation, project: pa }),
  "metal.api.v1.SizeReservationService.List": () => ({ project: pa }),
  "metal.api.v1.TokenService.Create": () => ({ description: "child" }),
  "metal.api.v1.TokenService.List": () => ({}),
  "metal.api.v1.TokenService.Revoke": async (w, token) => {
    // The caller's own child, where the caller can make one; a stranger's id otherwise (refused before it is looked up).
    const child =
      token &&
      (await w.server
        .client(TokenService, token)
        .create({ description: "to revoke" })
        .catch(() => undefined));
    return { id: child ? child.token!.id : randomUUID() };
  },
  "metal.api.v1.TokenService.Get": async (w, token) => ({ id: await ownChildToken(w, token) }),
  "metal.api.v1.TokenService.Update": async (w, token) => ({ id: await ownChildToken(w, token), description: "updated" }),
  "metal.api.v1.TokenService.Refresh": async (w, token) => ({ id: await ownChildToken(w, token) }),
  "metal.api.v1.UserService.Get": () => ({}),
  "metal.api.v1.VersionService.Get": () => ({}),
  "metal.api.v1.SignInService.Config": () => ({}),

  // metal.admin.v1
  "metal.admin.v1.AuditService.List": () => ({}),
  // The newest entry: every case before this one that changed something left one.
  "metal.admin.v1.AuditService.Get": async (w) => ({ id: (await w.server.client(AdminAudit, admin(w)).list({ paging: { limit: 1 } })).entries[0]?.id ?? randomUUID() }),
  "metal.admin.v1.ConnectionService.List": () => ({}),
  "metal.admin.v1.FilesystemLayoutService.Create": async (w) => ({ filesystemLayout: freshLayout(w, await freshSize(w)) }),
  "metal.admin.v1.FilesystemLayoutService.Update": async (w) => {
    const layout = freshLayout(w, await freshSize(w));
    await w.server.client(AdminLayouts, admin(w)).create({ filesystemLayout: layout });
    return { filesystemLayout: { ...layout, meta: { version: 1n }, description: "updated" } };
  },
  "metal.admin.v1.FilesystemLayoutService.Delete": async (w) => {
    const layout = freshLayout(w, await freshSize(w));
    await w.server.client(AdminLayouts, admin(w)).create({ filesystemLayout: layout });
    return { id: layout.id };
  },
  "metal.admin.v1.FilesystemLayoutService.List": () => ({}),
  "metal.admin.v1.FilesystemLayoutService.Match": (w) => ({ id: "s1-default", machineId: w.allocated }),
  "metal.admin.v1.ImageService.Create": (w) => ({ id: `firewall-3.0.${w.fresh("")}`, url: "http://images.example/fw.tar", features: [ImageFeature.FIREWALL] }),
  "metal.admin.v1.ImageService.Update": async (w) => ({ id: await freshImage(w), version: 1n, description: "updated" }),
  "metal.admin.v1.ImageService.Delete": async (w) => ({ id: await freshImage(w) }),
  "metal.admin.v1.ImageService.List": () => ({}),
  "metal.admin.v1.IPService.List": () => ({}),
  "metal.admin.v1.MachineService.Get": (w) => ({ id: w.allocated }),
  "metal.admin.v1.MachineService.List": () => ({}),
  "metal.admin.v1.MachineService.SetState": async (w) => ({ id: await insertSilentMachine(w.server), state: MachineState.LOCKED, reason: "matrix" }),
  "metal.admin.v1.MachineService.Delete": async (w) => ({ id: await insertSilentMachine(w.server) }),
  "metal.admin.v1.MachineService.Issues": () => ({}),
  "metal.admin.v1.MachineService.BMCCommand": (w) => ({ id: w.allocated, command: BmcCommand.POWER_ON, description: "permission matrix" }),
  "metal.admin.v1.MachineService.Commands": (w) => ({ id: w.allocated }),
  "metal.admin.v1.MachineService.Watch": () => ({ partition: p1 }),
  "metal.admin.v1.NetworkService.Create": (w) => {
    const n = Number(w.fresh(""));
    return { id: `ext${n}`, type: NetworkType.EXTERNAL, prefixes: [`172.${16 + (n >> 8)}.${n & 0xff}.0/24`] };
  },
  "metal.admin.v1.NetworkService.Update": async (w) => ({ id: await freshExternal(w), version: 1n, description: "updated" }),
  "metal.admin.v1.NetworkService.Delete": async (w) => ({ id: await freshExternal(w) }),
  "metal.admin.v1.NetworkService.Get": () => ({ id: "super" }),
  "metal.admin.v1.NetworkService.List": () => ({}),
  "metal.admin.v1.PartitionService.Create": (w) => ({ id: w.fresh("pp") }),
  "metal.admin.v1.PartitionService.Update": async (w) => ({ id: await freshPartition(w), version: 1n, description: "updated" }),
  "metal.admin.v1.PartitionService.Delete": async (w) => ({ id: await freshPartition(w) }),
  "metal.admin.v1.PartitionService.List": () => ({}),
  "metal.admin.v1.PartitionService.Capacity": () => ({}),
  "metal.admin.v1.SizeImageConstraintService.Create": (w) => ({ size: w.fresh("sz"), images: { debian: ">= 12" } }),
  "metal.admin.v1.SizeImageConstraintService.Update": async (w) => {
    const size = w.fresh("sz");
    await w.server.client(AdminConstraints, admin(w)).create({ size, images: { debian: ">= 12" } });
    return { size, version: 1n, images: { debian: ">= 11" } };
  },
  "metal.admin.v1.SizeImageConstraintService.Delete": async (w) => {
    const size = w.fresh("sz");
    await w.server.client(AdminConstraints, admin(w)).create({ size, images: { debian: ">= 12" } });
    return { size };
  },
  "metal.admin.v1.SizeImageConstraintService.Get": (w) => ({ size: w.constrainedSize }),
  "metal.admin.v1.SizeImageConstraintService.List": () => ({}),
  "metal.admin.v1.SizeImageConstraintService.Try": () => ({ size: "s1", image: IMAGE }),
  "metal.admin.v1.SizeService.Create": (w) => sizeRequest(w),
  "metal.admin.v1.SizeService.Update": async (w) => ({ id: await freshSize(w), version: 1n, description: "updated" }),
  "metal.admin.v1.SizeService.Delete": async (w) => ({ id: await freshSize(w) }),
  "metal.admin.v1.SizeService.List": () => ({}),
  "metal.admin.v1.SizeService.Suggest": (w) => ({ machineId: w.allocated }),
  "metal.admin.v1.SizeReservationService.Create": () => ({ name: "r", sizeId: "s1", project: pa, partitionIds: [p1], amount: 1 }),
  "metal.admin.v1.SizeReservationService.Update": async (w) => {
    const { sizeReservation } = await w.server.client(AdminReservations, admin(w)).create({ name: "r", sizeId: "s1", project: pa, partitionIds: [p1], amount: 1 });
    return { id: sizeReservation!.id, version: 1n, description: "updated" };
  },
  "metal.admin.v1.SizeReservationService.Delete": async (w) => {
    const { sizeReservation } = await w.server.client(AdminReservations, admin(w)).create({ name: "r", sizeId: "s1", project: pa, partitionIds: [p1], amount: 1 });
    return { id: sizeReservation!.id };
  },
  "metal.admin.v1.SizeReservationService.List": () => ({}),
  "metal.admin.v1.SizeReservationService.Get": (w) => ({ id: w.reservation }),
  "metal.admin.v1.SizeReservationService.Usage": () => ({}),
  "metal.admin.v1.SwitchService.Get": () => ({ id: "leaf01" }),
  "metal.admin.v1.SwitchService.List": () => ({}),
  "metal.admin.v1.SwitchService.Update": async (w) => ({ id: await freshSwitch(w), version: 1n, description: "updated" }),
  "metal.admin.v1.SwitchService.Delete": async (w) => ({ id: await freshSwitch(w) }),
  "metal.admin.v1.SwitchService.Port": () => ({ id: "leaf01", nic: "swp1", state: SwitchPortState.UP }),
  "metal.admin.v1.SwitchService.Migrate": async (w) => {
    const rack = w.fresh("rack");
    return { oldSwitch: await freshSwitch(w, rack), newSwitch: await freshSwitch(w, rack) };
  },
  "metal.admin.v1.TokenService.Create": () => ({ subject: "matrix-child", roles: {} }),
  "metal.admin.v1.TokenService.List": () => ({}),
  "metal.admin.v1.TokenService.Get": async (w) => ({ id: (await w.server.client(AdminTokens, admin(w)).create({ subject: "to-read", roles: {} })).token!.id }),
  "metal.admin.v1.TokenService.Update": async (w) => ({ id: (await w.server.client(AdminTokens, admin(w)).create({ subject: "to-update", roles: {} })).token!.id, description: "updated" }),
  "metal.admin.v1.TokenService.Refresh": async (w) => ({ id: (await w.server.client(AdminTokens, admin(w)).create({ subject: "to-refresh", roles: {} })).token!.id }),
  "metal.admin.v1.TokenService.RotateSigningKey": () => ({}),
  "metal.admin.v1.TokenService.Revoke": async (w) => ({ id: (await w.server.client(AdminTokens, admin(w)).create({ subject: "to-revoke", roles: { projectRoles: { [pa]: 1 } } })).token!.id }),

  // metal.infra.v1: machine-bound requests name machine M, the machine of "this" machine credential
  "metal.infra.v1.BMCService.Report": () => ({ partition: p1, reports: [] }),
  "metal.infra.v1.BootService.Dhcp": (w) => ({ partition: p1, machineId: w.hammers.M.id }),
  "metal.infra.v1.BootService.Boot": (w) => ({ partition: p1, mac: w.newMac(), uuid: randomUUID() }),
  "metal.infra.v1.BootService.Register": (w) => ({ partition: p1, machineId: w.hammers.M.id, hardware: hammerHardware(w.hammers.M.macs) }),
  "metal.infra.v1.BootService.Wait": (w) => ({ partition: p1, machineId: w.hammers.M.id }),
  "metal.infra.v1.BootService.RenewCredential": (w) => ({ partition: p1, machineId: w.hammers.M.id }),
  "metal.infra.v1.EventService.Send": (w) => ({ partition: p1, events: [{ machineId: w.hammers.M.id, type: T.WAITING }] }),
  "metal.infra.v1.SwitchService.Register": (w) => ({ partition: p1, id: w.fresh("sw"), rack: "r9", nics: [{ name: "swp1" }] }),

  // masterdata.v1 and grpc.health.v1
  "grpc.health.v1.Health.Check": () => ({ service: "" }),
  "grpc.health.v1.Health.Watch": () => ({ service: "" }),
  "masterdata.v1.TenantService.Create": (w) => ({ tenant: { meta: { id: w.fresh("tt") }, name: "n" } }),
  "masterdata.v1.TenantService.Update": async (w) => ({ tenant: { meta: { id: await freshTenant(w), version: 1n }, name: "renamed" } }),
  "masterdata.v1.TenantService.Delete": async (w) => ({ id: await freshTenant(w) }),
  "masterdata.v1.TenantService.Get": () => ({ id: THIS.tenant }),
  "masterdata.v1.TenantService.Find": () => ({}),
  "masterdata.v1.TenantService.GetHistory": () => ({ id: THIS.tenant }),
  "masterdata.v1.ProjectService.Create": (w) => ({ project: { meta: { id: w.fresh("pp") }, name: "n", tenantId: THIS.tenant } }),
  "masterdata.v1.ProjectService.Update": async (w) => ({ project: { meta: { id: await freshProject(w), version: 1n }, name: "renamed", tenantId: THIS.tenant } }),
  "masterdata.v1.ProjectService.Delete": async (w) => ({ id: await freshProject(w) }),
  "masterdata.v1.ProjectService.Get": () => ({ id: pa }),
  "masterdata.v1.ProjectService.Find": () => ({}),
  "masterdata.v1.ProjectService.GetHistory": () => ({ id: pa }),
  "masterdata.v1.TenantMemberService.Create": async (w) => ({ tenantMember: await tenantMembership(w) }),
  "masterdata.v1.TenantMemberService.Update": async (w) => {
    const { id, ...m } = await freshTenantMember(w);
    return { tenantMember: { ...m, meta: { id, version: 1n }, role: 2 } };
  },
  "masterdata.v1.TenantMemberService.Delete": async (w) => ({ id: (await freshTenantMember(w)).id }),
  "masterdata.v1.TenantMemberService.Get": async (w) => ({ id: (await freshTenantMember(w)).id }),
  "masterdata.v1.TenantMemberService.Find": () => ({ tenantId: THIS.tenant }),
  "masterdata.v1.TenantMemberService.GetHistory": async (w) => ({ id: (await freshTenantMember(w)).id }),
  "masterdata.v1.ProjectMemberService.Create": async (w) => ({ projectMember: await projectMembership(w) }),
  "masterdata.v1.ProjectMemberService.Update": async (w) => {
    const { id, ...m } = await freshProjectMember(w);
    return { projectMember: { ...m, meta: { id, version: 1n }, role: 2 } };
  },
  "masterdata.v1.ProjectMemberService.Delete": async (w) => ({ id: (await freshProjectMember(w)).id }),
  "masterdata.v1.ProjectMemberService.Get": async (w) => ({ id: (await freshProjectMember(w)).id }),
  "masterdata.v1.ProjectMemberService.Find": () => ({ projectId: pa }),
  "masterdata.v1.ProjectMemberService.GetHistory": async (w) => ({ id: (await freshProjectMember(w)).id }),
};

/** The request of one case: a valid one where known, else the scope-only one. */
export async function requestFor(method: DescMethod, w: MatrixWorld, token: string | undefined): Promise<unknown> {
  const f = VALID[methodName(method)] ?? NEAR_VALID[methodName(method)];
  return f ? await f(w, token) : scopeRequest(method, w);
}
