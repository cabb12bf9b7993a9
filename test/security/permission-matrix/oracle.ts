import { Code } from "@connectrpc/connect";
import { AdminRole, type Permission, ProjectRole, TenantRole, Visibility } from "../../../gen/metal/api/v1/common_pb.js";
import type { Caller } from "./roles.js";

/** What a request names, as the permission's comments refer to it. */
export interface RequestTarget {
  project?: string;
  tenant?: string;
  partition?: string;
  /** The request's `machine_id`, or every event's; undefined when its message has neither field. */
  machineIds?: string[];
}

/** Facts about the world the oracle needs: which tenant owns a project, which machine a credential is for. */
export interface World {
  tenantOf: Record<string, string>;
  machines: Record<"M" | "M2", { id: string; partition: string }>;
}

export type Expected = { allow: true } | { allow: false; codes: readonly Code[] };

const allow: Expected = { allow: true };
const refuse = (...codes: Code[]): Expected => ({ allow: false, codes });

/**
 * The decision the comments of proto/metal/api/v1/common.proto describe,
 * written from them alone (not from server/domain/authorize.ts):
 * - `replica`: only a replica credential; other fields ignored. No token or a
 *   bad one is Unauthenticated; a metal token (any role) PermissionDenied.
 * - PUBLIC needs no token at all (a bad one does not matter); anything else
 *   without a valid token is Unauthenticated.
 * - A machine credential passes only methods with `machine`, for its own
 *   machine (every machine id the request names, at least one if its message
 *   has the field) and its own partition (when the request names one).
 * - AUTHENTICATED: any valid token.
 * - An operator admin passes every check; an operator viewer "reads
 *   everything": methods whose every stated role is a viewer role.
 * - project_role: the caller's role in the request's `project`, a tenant role
 *   counting for the tenant's projects at the same level; tenant_role: the
 *   role in the request's `tenant`; infra: an infra token of the request's
 *   `partition`. Each of them admits on its own.
 * - A method stating `machine` and no other field is for machine credentials
 *   alone: every other valid token is PermissionDenied.
 * - Nothing else admits: a method stating no role at all is for operator admins.
 */
export function expectedDecision(p: Permission, caller: Caller, target: RequestTarget, world: World): Expected {
  if (p.replica) {
    if (caller.kind === "none" || caller.kind === "garbage") return refuse(Code.Unauthenticated);
    // A machine credential is neither a replica's nor a metal token: either refusal is right.
    if (caller.kind === "machine") return refuse(Code.Unauthenticated, Code.PermissionDenied);
    return refuse(Code.PermissionDenied);
  }
  if (p.visibility === Visibility.PUBLIC) return allow;
  if (caller.kind === "none" || caller.kind === "garbage") return refuse(Code.Unauthenticated);
  if (caller.kind === "machine") {
    if (!p.machine) return refuse(Code.PermissionDenied);
    const own = world.machines[caller.machine];
    const ids = target.machineIds;
    if (ids !== undefined && (ids.length === 0 || ids.some((id) => id.toLowerCase() !== own.id))) return refuse(Code.PermissionDenied);
    if (target.partition !== undefined && target.partition !== own.partition) return refuse(Code.PermissionDenied);
    return allow;
  }
  if (p.visibility === Visibility.AUTHENTICATED) return allow;
  const statesOnlyMachine = p.adminRole === AdminRole.UNSPECIFIED && p.projectRole === ProjectRole.UNSPECIFIED && p.tenantRole === TenantRole.UNSPECIFIED && !p.infra && p.visibility === Visibility.UNSPECIFIED;
  if (p.machine && statesOnlyMachine) return refuse(Code.PermissionDenied);
  if (caller.kind === "operator" && caller.level === AdminRole.ADMIN) return allow;
  if (caller.kind === "operator" && caller.level === AdminRole.VIEWER && isRead(p)) return allow;
  if (p.projectRole !== ProjectRole.UNSPECIFIED && projectLevel(caller, target.project ?? "", world) >= p.projectRole) return allow;
  if (p.tenantRole !== TenantRole.UNSPECIFIED && caller.kind === "tenant" && target.tenant === caller.tenant && caller.level >= p.tenantRole) return allow;
  if (p.infra && caller.kind === "infra" && target.partition === caller.partition) return allow;
  return refuse(Code.PermissionDenied);
}

/** A read: at least one role is stated, and every stated role is a viewer's. */
function isRead(p: Permission): boolean {
  const stated = [p.adminRole, p.projectRole, p.tenantRole].filter((r) => r !== 0);
  return stated.length > 0 && stated.every((r) => r === 1);
}

function projectLevel(caller: Caller, project: string, world: World): number {
  if (project === "") return 0;
  if (caller.kind === "project" && caller.project === project) return caller.level;
  if (caller.kind === "tenant" && world.tenantOf[project] === caller.tenant) return caller.level;
  return 0;
}
