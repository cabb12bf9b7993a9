import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { InvitationService as MasterdataInvitationService } from "../gen/masterdata/v1/invitation_pb.js";
import { MembershipService as MasterdataMembershipService } from "../gen/masterdata/v1/membership_pb.js";
import { ProjectMemberService as MasterdataProjectMemberService } from "../gen/masterdata/v1/project_member_pb.js";
import { ProjectService as MasterdataProjectService } from "../gen/masterdata/v1/project_pb.js";
import { TenantMemberService as MasterdataTenantMemberService } from "../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MasterdataTenantService } from "../gen/masterdata/v1/tenant_pb.js";
import { AuditService as AdminAuditService } from "../gen/metal/admin/v1/audit_pb.js";
import { ConnectionService as AdminConnectionService } from "../gen/metal/admin/v1/connection_pb.js";
import { FilesystemLayoutService as AdminFilesystemLayoutService } from "../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImageService } from "../gen/metal/admin/v1/image_pb.js";
import { IPService as AdminIPService } from "../gen/metal/admin/v1/ip_pb.js";
import { MachineService as AdminMachineService } from "../gen/metal/admin/v1/machine_pb.js";
import { NetworkService as AdminNetworkService } from "../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitionService } from "../gen/metal/admin/v1/partition_pb.js";
import { SizeImageConstraintService as AdminSizeImageConstraintService } from "../gen/metal/admin/v1/size_image_constraint_pb.js";
import { SizeService as AdminSizeService } from "../gen/metal/admin/v1/size_pb.js";
import { SizeReservationService as AdminSizeReservationService } from "../gen/metal/admin/v1/size_reservation_pb.js";
import { SwitchService as AdminSwitchService } from "../gen/metal/admin/v1/switch_pb.js";
import { TokenService as AdminTokenService } from "../gen/metal/admin/v1/token_pb.js";
import { AuditService } from "../gen/metal/api/v1/audit_pb.js";
import { ConsoleService } from "../gen/metal/api/v1/console_pb.js";
import { FilesystemLayoutService } from "../gen/metal/api/v1/filesystem_layout_pb.js";
import { HealthService } from "../gen/metal/api/v1/health_pb.js";
import { ImageService } from "../gen/metal/api/v1/image_pb.js";
import { IPService } from "../gen/metal/api/v1/ip_pb.js";
import { MachineService } from "../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../gen/metal/api/v1/network_pb.js";
import { PartitionService } from "../gen/metal/api/v1/partition_pb.js";
import { ProjectService } from "../gen/metal/api/v1/project_pb.js";
import { SignInService } from "../gen/metal/api/v1/signin_pb.js";
import { SizeImageConstraintService } from "../gen/metal/api/v1/size_image_constraint_pb.js";
import { SizeService } from "../gen/metal/api/v1/size_pb.js";
import { SizeReservationService } from "../gen/metal/api/v1/size_reservation_pb.js";
import { TenantService } from "../gen/metal/api/v1/tenant_pb.js";
import { TokenService } from "../gen/metal/api/v1/token_pb.js";
import { UserService } from "../gen/metal/api/v1/user_pb.js";
import { VersionService } from "../gen/metal/api/v1/version_pb.js";
import { BMCService } from "../gen/metal/infra/v1/bmc_pb.js";
import { BootService } from "../gen/metal/infra/v1/boot_pb.js";
import { ConsoleService as InfraConsoleService } from "../gen/metal/infra/v1/console_pb.js";
import { EventService } from "../gen/metal/infra/v1/event_pb.js";
import { SwitchService as InfraSwitchService } from "../gen/metal/infra/v1/switch_pb.js";

/**
 * Every public service of the control plane by audience: `api` for tenants
 * (metal.api.v1), `admin` for operators (metal.admin.v1), `infra` for the
 * partition daemons (metal.infra.v1) and `masterdata` for tenants and
 * projects. metal.internal.v1 is left out on purpose: only replicas speak it;
 * so is grpc.health.v1 (for load balancers' probes, which bring their own
 * client). test/client/services.test.ts holds this list to proto/.
 */
export const METAL_SERVICES = {
  api: {
    audit: AuditService,
    console: ConsoleService,
    filesystemLayout: FilesystemLayoutService,
    health: HealthService,
    image: ImageService,
    ip: IPService,
    machine: MachineService,
    network: NetworkService,
    partition: PartitionService,
    project: ProjectService,
    signIn: SignInService,
    size: SizeService,
    sizeImageConstraint: SizeImageConstraintService,
    sizeReservation: SizeReservationService,
    tenant: TenantService,
    token: TokenService,
    user: UserService,
    version: VersionService,
  },
  admin: {
    audit: AdminAuditService,
    connection: AdminConnectionService,
    filesystemLayout: AdminFilesystemLayoutService,
    image: AdminImageService,
    ip: AdminIPService,
    machine: AdminMachineService,
    network: AdminNetworkService,
    partition: AdminPartitionService,
    size: AdminSizeService,
    sizeImageConstraint: AdminSizeImageConstraintService,
    sizeReservation: AdminSizeReservationService,
    switch: AdminSwitchService,
    token: AdminTokenService,
  },
  infra: {
    bmc: BMCService,
    boot: BootService,
    console: InfraConsoleService,
    event: EventService,
    switch: InfraSwitchService,
  },
  masterdata: {
    invitation: MasterdataInvitationService,
    membership: MasterdataMembershipService,
    project: MasterdataProjectService,
    projectMember: MasterdataProjectMemberService,
    tenant: MasterdataTenantService,
    tenantMember: MasterdataTenantMemberService,
  },
} as const;

export type MetalServices = typeof METAL_SERVICES;

type ClientOf<T> = T extends DescService ? Client<T> : never;

/** A typed client for every service of METAL_SERVICES, grouped the same way. */
export type MetalServiceClients = {
  readonly [G in keyof MetalServices]: { readonly [S in keyof MetalServices[G]]: ClientOf<MetalServices[G][S]> };
};

/**
 * The clients of every service on one transport. Each is made on first use
 * and then kept: a script that needs two services does not build forty.
 */
export function serviceClients(transport: Transport): MetalServiceClients {
  const groups: Record<string, object> = {};
  for (const [group, services] of Object.entries(METAL_SERVICES)) {
    const clients: Record<string, unknown> = {};
    for (const [name, service] of Object.entries(services)) {
      let client: unknown;
      Object.defineProperty(clients, name, { enumerable: true, get: () => (client ??= createClient(service, transport)) });
    }
    groups[group] = Object.freeze(clients);
  }
  return Object.freeze(groups) as MetalServiceClients;
}
