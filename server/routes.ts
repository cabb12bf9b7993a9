import type { ConnectRouter } from "@connectrpc/connect";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
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
import { ConsoleService as ApiConsoleService } from "../gen/metal/api/v1/console_pb.js";
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
import { ConsoleService } from "../gen/metal/infra/v1/console_pb.js";
import { EventService } from "../gen/metal/infra/v1/event_pb.js";
import { SwitchService as InfraSwitchService } from "../gen/metal/infra/v1/switch_pb.js";
import { ReplicaService } from "../gen/metal/internal/v1/replica_pb.js";
import type { MachineCredentials } from "./auth/machine-credential.js";
import type { ProjectDirectory } from "./auth/project-directory.js";
import type { TokenAuthority } from "./auth/token-authority.js";
import type { FanoutBus } from "./bus/fanout.js";
import type { DbHandle } from "./db/handle.js";
import type { HealthCheck } from "./health.js";
import type { Logger } from "./logger.js";
import { type BusinessEvents, countSwitchSyncs, NO_BUSINESS_EVENTS } from "./metrics/events.js";
import { createAdminAuditService } from "./services/admin/audit-service.js";
import { createAdminConnectionService } from "./services/admin/connection-service.js";
import { createAdminFilesystemLayoutService } from "./services/admin/filesystem-layout-service.js";
import { createAdminImageService } from "./services/admin/image-service.js";
import { createAdminIpService } from "./services/admin/ip-service.js";
import { createAdminMachineService } from "./services/admin/machine-service.js";
import { createAdminNetworkService } from "./services/admin/network-service.js";
import { createAdminPartitionService } from "./services/admin/partition-service.js";
import { createAdminSizeImageConstraintService } from "./services/admin/size-image-constraint-service.js";
import { createAdminSizeReservationService } from "./services/admin/size-reservation-service.js";
import { createAdminSizeService } from "./services/admin/size-service.js";
import { createAdminSwitchService } from "./services/admin/switch-service.js";
import { createAdminTokenService } from "./services/admin/token-service.js";
import { createAuditService } from "./services/api/audit-service.js";
import { createApiConsoleService } from "./services/api/console-service.js";
import { createFilesystemLayoutService } from "./services/api/filesystem-layout-service.js";
import { createGrpcHealthService } from "./services/api/grpc-health-service.js";
import { createHealthService } from "./services/api/health-service.js";
import { createImageService } from "./services/api/image-service.js";
import { createIpService } from "./services/api/ip-service.js";
import { createMachineService } from "./services/api/machine-service.js";
import { createNetworkService } from "./services/api/network-service.js";
import { createPartitionService } from "./services/api/partition-service.js";
import { createProjectService } from "./services/api/project-service.js";
import { createSignInService } from "./services/api/signin-service.js";
import { createSizeImageConstraintService } from "./services/api/size-image-constraint-service.js";
import { createSizeReservationService } from "./services/api/size-reservation-service.js";
import { createSizeService } from "./services/api/size-service.js";
import { createTenantService } from "./services/api/tenant-service.js";
import { createTokenService } from "./services/api/token-service.js";
import { createUserService } from "./services/api/user-service.js";
import { createVersionService } from "./services/api/version-service.js";
import { createBmcService } from "./services/infra/bmc-service.js";
import { createBootService } from "./services/infra/boot-service.js";
import { createConsoleService } from "./services/infra/console-service.js";
import { createEventService } from "./services/infra/event-service.js";
import { createSwitchService } from "./services/infra/switch-service.js";
import { createReplicaService } from "./services/internal/replica-service.js";
import type { ReplicaSessions } from "./sessions/replica-sessions.js";
import type { WatchHub } from "./sessions/watch/hub.js";
import type { BrowserConsoles } from "./usecases/console/browser-consoles.js";
import { createReferenceLookups } from "./usecases/machines/reference-lookups.js";
import type { SignIn } from "./usecases/signin/sign-in.js";
import type { Masterdata } from "./usecases/tenancy/masterdata.js";

export interface RouteDeps {
  db: DbHandle;
  bus: FanoutBus;
  /** What this replica's daemon sessions share (connection registry, waiting machines, console relays, batched switch I/O). */
  sessions: ReplicaSessions;
  authority: TokenAuthority;
  projects: ProjectDirectory;
  checks: readonly HealthCheck[];
  build: { version: string; revision: string };
  log: Logger;
  /** This replica's Watch hub (MachineService.Watch, tenant and admin). */
  watch?: WatchHub;
  /** Signs metal-hammer's machine credentials (BootService.Boot, RenewCredential). */
  machineCredentials: MachineCredentials;
  /** Serial consoles in the browser (metal.api.v1.ConsoleService), through the SSH console's opener. */
  browserConsoles: BrowserConsoles;
  /** masterdata's clients: tenant and project self-service (docs/tenancy.md) and whoami's memberships. */
  masterdata?: Masterdata;
  /** Where allocations, frees, BMC command results and switch syncs are counted for /metrics (server/metrics/business.ts). */
  businessEvents?: BusinessEvents;
  /** OpenID Connect sign-in (metal.api.v1.SignInService); answers FailedPrecondition when no issuer is configured. */
  signIn: SignIn;
}

/** Registers every metal service; nothing else happens here. */
export function registerRoutes(router: ConnectRouter, deps: RouteDeps): void {
  const { db, authority, projects, checks, bus } = deps;
  const events = deps.businessEvents ?? NO_BUSINESS_EVENTS;
  const metalServices = new Set<string>();
  const add: ConnectRouter["service"] = (service, impl, options) => {
    metalServices.add(service.typeName);
    return router.service(service, impl, options);
  };

  // metal.api.v1: tenants and everyone with a token
  add(PartitionService, createPartitionService({ db }));
  add(SizeService, createSizeService({ db }));
  add(SizeReservationService, createSizeReservationService({ db }));
  add(SizeImageConstraintService, createSizeImageConstraintService({ db }));
  add(ImageService, createImageService({ db }));
  add(FilesystemLayoutService, createFilesystemLayoutService({ db }));
  add(NetworkService, createNetworkService({ db, projects }));
  add(IPService, createIpService({ db, projects }));
  add(MachineService, createMachineService({ db, projects, bus, log: deps.log, refs: createReferenceLookups(db), watch: deps.watch, events }));
  add(TokenService, createTokenService({ db, authority, projects }));
  add(UserService, createUserService({ db, md: deps.masterdata }));
  if (deps.masterdata) {
    add(TenantService, createTenantService({ md: deps.masterdata, db, authority }));
    add(ProjectService, createProjectService({ md: deps.masterdata, db, authority }));
  }
  add(VersionService, createVersionService(deps.build));
  add(HealthService, createHealthService(checks));
  add(ApiConsoleService, createApiConsoleService({ consoles: deps.browserConsoles }));
  add(AuditService, createAuditService({ db }));
  add(SignInService, createSignInService({ signIn: deps.signIn }));

  // metal.admin.v1: operators
  add(AdminPartitionService, createAdminPartitionService({ db }));
  add(AdminSizeService, createAdminSizeService({ db }));
  add(AdminSizeReservationService, createAdminSizeReservationService({ db, projects }));
  add(AdminSizeImageConstraintService, createAdminSizeImageConstraintService({ db }));
  add(AdminImageService, createAdminImageService({ db }));
  add(AdminFilesystemLayoutService, createAdminFilesystemLayoutService({ db }));
  add(AdminNetworkService, createAdminNetworkService({ db, projects }));
  add(AdminIPService, createAdminIpService({ db }));
  add(AdminMachineService, createAdminMachineService({ db, bus, log: deps.log, watch: deps.watch }));
  add(AdminSwitchService, createAdminSwitchService({ db, bus }));
  add(AdminConnectionService, createAdminConnectionService({ connections: deps.sessions.connections }));
  add(AdminAuditService, createAdminAuditService({ db }));

  // metal.infra.v1: the partition's daemons
  add(EventService, createEventService({ db }));
  const { sessions } = deps;
  add(BootService, createBootService({ db, bus, waiting: sessions.waiting, waitTiming: sessions.waitTiming, machineCredentials: deps.machineCredentials }));
  add(
    InfraSwitchService,
    createSwitchService({ db, bus, connections: sessions.connections, log: deps.log, configReader: sessions.switchConfigReader, syncWriter: countSwitchSyncs(sessions.switchSyncWriter, events) }),
  );
  add(BMCService, createBmcService({ db, bus, connections: sessions.connections, consoles: sessions.consoles, events }));
  add(ConsoleService, createConsoleService({ consoles: sessions.consoles }));

  // metal.internal.v1: the other replicas only (the service brings its own gate in place of the token interceptors)
  // Only replicas: the permission `replica` (the auth interceptor checks the replica credential).
  add(ReplicaService, createReplicaService({ consoles: sessions.consoles, browserConsoles: deps.browserConsoles }));
  add(AdminTokenService, createAdminTokenService({ db, authority }));

  router.service(Health, createGrpcHealthService(checks, metalServices));
}
