import type { Permission } from "../../gen/metal/api/v1/common_pb.js";
import { Visibility } from "../../gen/metal/api/v1/common_pb.js";
import { AdminRole, adminRoleName, effectiveProjectRole, levelName, type MachineCaller, type Principal, ProjectRole, TenantRole } from "./roles.js";

/** The scope fields of a request that a permission refers to. */
export interface Target {
  project?: string;
  tenant?: string;
  partition?: string;
  /** The machines a request acts for: its `machine_id`, or every event's. */
  machineIds?: string[];
}

export type Decision =
  | { allow: true }
  | { allow: false; code: "unauthenticated" | "permission_denied"; message: string }
  /** The caller's tenant roles might grant it: look up the project's tenant and decide again. */
  | { allow: false; code: "needs_project_tenant"; message: string };

const allow: Decision = { allow: true };
const deny = (message: string): Decision => ({ allow: false, code: "permission_denied", message: `permission denied: ${message}` });

/**
 * Decides whether `principal` may call a method declaring `permission` on
 * `target`. Pure: the caller resolves the project's tenant when asked to.
 *
 * - PUBLIC needs nothing, AUTHENTICATED any valid token.
 * - An operator admin may do everything; an operator viewer every read (a
 *   method whose strongest requirement is a viewer role).
 * - Project and tenant roles apply to the request's `project` / `tenant` field;
 *   a tenant role also applies to that tenant's projects.
 * - Infra tokens may call infra methods of their own partition.
 * - A machine credential may call only methods declaring `machine`, and only
 *   for its own machine in its own partition (see authorizeMachine). A method
 *   declaring `machine` and nothing else is for machine credentials alone:
 *   every other caller, an operator admin included, is refused.
 */
export function authorize(principal: Principal | undefined, permission: Permission, target: Target, projectTenant?: string): Decision {
  if (permission.visibility === Visibility.PUBLIC) return allow;
  if (!principal) return { allow: false, code: "unauthenticated", message: "this call needs a token: send 'Authorization: Bearer <token>'" };
  if (principal.machine) return authorizeMachine(principal.machine, permission, target);
  if (permission.visibility === Visibility.AUTHENTICATED) return allow;
  if (isMachineOnly(permission)) return deny("only a machine credential may call this method");

  const roles = principal.roles;
  if (roles.adminRole === AdminRole.ADMIN) return allow;
  const isRead =
    (permission.adminRole === AdminRole.VIEWER || permission.adminRole === AdminRole.UNSPECIFIED) &&
    (permission.projectRole === ProjectRole.VIEWER || permission.projectRole === ProjectRole.UNSPECIFIED) &&
    (permission.tenantRole === TenantRole.VIEWER || permission.tenantRole === TenantRole.UNSPECIFIED) &&
    (permission.adminRole !== AdminRole.UNSPECIFIED || permission.projectRole !== ProjectRole.UNSPECIFIED || permission.tenantRole !== TenantRole.UNSPECIFIED);
  if (roles.adminRole === AdminRole.VIEWER && isRead) return allow;

  if (permission.projectRole !== ProjectRole.UNSPECIFIED) {
    const project = target.project ?? "";
    if (project === "") return { allow: false, code: "permission_denied", message: "permission denied: the request names no project" };
    if (effectiveProjectRole(roles, project, projectTenant) >= permission.projectRole) return allow;
    if (projectTenant === undefined && Object.keys(roles.tenantRoles).length > 0) {
      return { allow: false, code: "needs_project_tenant", message: "" };
    }
    return deny(`needs project ${levelName(permission.projectRole)} of "${project}"`);
  }
  if (permission.tenantRole !== TenantRole.UNSPECIFIED) {
    const tenant = target.tenant ?? "";
    if (tenant === "") return deny("the request names no tenant");
    if ((roles.tenantRoles[tenant] ?? 0) >= permission.tenantRole) return allow;
    return deny(`needs tenant ${levelName(permission.tenantRole)} of "${tenant}"`);
  }
  if (permission.infra) {
    const partition = target.partition ?? "";
    if (roles.infraPartition !== "" && roles.infraPartition === partition) return allow;
    return deny(`needs an infra token of partition "${partition}"`);
  }
  const needed = permission.adminRole === AdminRole.UNSPECIFIED ? AdminRole.ADMIN : permission.adminRole;
  return deny(`needs ${adminRoleName(needed)}, the token has ${adminRoleName(roles.adminRole)}`);
}

/**
 * A machine credential acts only for its machine: every machine id the
 * request names must be the credential's, a request of a machine method
 * naming none is refused (an empty id would otherwise pass), and the
 * partition, where the request names one, must be the credential's.
 */
function authorizeMachine(machine: MachineCaller, permission: Permission, target: Target): Decision {
  if (!permission.machine) return deny("a machine credential may call only metal-hammer's methods");
  if (target.partition !== undefined && target.partition !== machine.partition) return deny(`the machine credential is for partition "${machine.partition}"`);
  const ids = target.machineIds;
  if (ids !== undefined) {
    if (ids.length === 0) return deny("the request names no machine");
    const other = ids.find((id) => id.toLowerCase() !== machine.id);
    if (other !== undefined) return deny(`the machine credential acts only for machine "${machine.id}"`);
  }
  return allow;
}

/** `machine` and nothing that admits anyone else: no visibility, no role, no infra. */
export function isMachineOnly(p: Permission): boolean {
  return (
    p.machine &&
    p.visibility === Visibility.UNSPECIFIED &&
    p.adminRole === AdminRole.UNSPECIFIED &&
    p.projectRole === ProjectRole.UNSPECIFIED &&
    p.tenantRole === TenantRole.UNSPECIFIED &&
    !p.infra &&
    !p.replica
  );
}
