import { AdminRole, ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";

/** What a token grants. Role enums are ordered: a higher value includes the lower ones. */
export interface Roles {
  adminRole: AdminRole;
  projectRoles: Record<string, ProjectRole>;
  tenantRoles: Record<string, TenantRole>;
  /** Non-empty for edge daemon tokens: the partition they serve. */
  infraPartition: string;
}

/** metal-hammer on one machine, as its machine credential names it (server/auth/machine-credential.ts). */
export interface MachineCaller {
  id: string;
  partition: string;
  generation: number;
  /** The MAC the credential was handed out for; "" for one renewed by a registered machine. */
  mac: string;
  /** Issued before the machine's installation succeeded: good only for repeating InstallationSucceeded. */
  superseded: boolean;
}

/** The caller of an RPC, as established from a verified, unrevoked token or machine credential. */
export interface Principal {
  tokenId: string;
  subject: string;
  expiresAt: Date;
  /** No roles for a machine credential. */
  roles: Roles;
  /** Set for a machine credential: the one machine it acts for. */
  machine?: MachineCaller;
}

export const noRoles = (): Roles => ({ adminRole: AdminRole.UNSPECIFIED, projectRoles: {}, tenantRoles: {}, infraPartition: "" });

const names = {
  admin: { [AdminRole.VIEWER]: "operator viewer", [AdminRole.ADMIN]: "operator admin" } as Record<number, string>,
  level: { 1: "viewer", 2: "editor", 3: "owner" } as Record<number, string>,
};

export const adminRoleName = (r: AdminRole) => names.admin[r] ?? "no operator role";
export const levelName = (r: ProjectRole | TenantRole) => names.level[r] ?? "none";

/** Tenant roles carry over to the tenant's projects with the same level. */
export function effectiveProjectRole(roles: Roles, project: string, projectTenant: string | undefined): ProjectRole {
  const direct = roles.projectRoles[project] ?? ProjectRole.UNSPECIFIED;
  const inherited = projectTenant === undefined ? 0 : (roles.tenantRoles[projectTenant] ?? 0);
  return Math.max(direct, inherited) as ProjectRole;
}

export { AdminRole, ProjectRole, TenantRole };
