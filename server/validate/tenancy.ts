import type { Duration } from "@bufbuild/protobuf/wkt";
import type { Quotas } from "../../gen/metal/api/v1/tenant_pb.js";
import { invitationTtlProblem, isMemberId, isRoleLevel, type RoleLevel } from "../domain/tenancy.js";
import { clip, type Validator, validator } from "./validator.js";

/** Tenant, project and member ids as masterdata has them. */
function tenancyId(v: Validator, path: string, id: string): void {
  if (id === "") v.add(path, "is required");
  else if (!isMemberId(id)) v.add(path, `"${clip(id)}" must be up to 128 lowercase letters, digits, '.', '_', '@' or '-', starting and ending with a letter or digit`);
}

function role(v: Validator, path: string, r: number): RoleLevel {
  if (!isRoleLevel(r)) v.add(path, "must be viewer, editor or owner");
  return r as RoleLevel;
}

function quotas(v: Validator, path: string, q: Quotas | undefined, withProject: boolean): void {
  if (!q) return;
  for (const k of ["machine", "ip", "network"] as const) if (q[k] !== undefined && q[k] < 0) v.add(`${path}.${k}`, `${q[k]} must not be negative`);
  if (!withProject && q.project !== undefined) v.add(`${path}.project`, "is a tenant's limit, not a project's");
}

const SECRET_MAX = 128;

/** Requests naming one tenant or project (Get, InvitesList, Leave, Delete). */
export function validateTarget(path: "tenant" | "project", id: string): void {
  const v = validator();
  tenancyId(v, path, id);
  v.check();
}

export function validateSecret(secret: string): void {
  const v = validator();
  if (secret === "") v.add("secret", "is required");
  else if (secret.length > SECRET_MAX) v.add("secret", `must be at most ${SECRET_MAX} characters`);
  v.check();
}

export function validateInvite(path: "tenant" | "project", req: { id: string; role: number; expiresIn?: Duration }): RoleLevel {
  const v = validator();
  tenancyId(v, path, req.id);
  const r = role(v, "role", req.role);
  if (req.expiresIn) {
    const problem = invitationTtlProblem(Number(req.expiresIn.seconds) * 1000 + Math.floor(req.expiresIn.nanos / 1e6));
    if (problem) v.add("expires_in", problem);
  }
  v.check();
  return r;
}

export function validateInviteDelete(path: "tenant" | "project", target: string, id: string): void {
  const v = validator();
  tenancyId(v, path, target);
  v.uuid("id", id);
  v.check();
}

export function validateMember(path: "tenant" | "project", target: string, member: string, r?: number): RoleLevel {
  const v = validator();
  tenancyId(v, path, target);
  tenancyId(v, "member", member);
  const level = r === undefined ? 3 : role(v, "role", r);
  v.check();
  return level;
}

export function validateUpdate(path: "tenant" | "project", req: { id: string; name?: string; description?: string; quotas?: Quotas }): void {
  const v = validator();
  tenancyId(v, path, req.id);
  if (req.name !== undefined) v.requiredText("name", req.name, 128);
  v.text("description", req.description, 1024);
  quotas(v, "quotas", req.quotas, false);
  v.check();
}

export function validateProjectCreate(req: { tenant: string; id: string; name: string; description: string; quotas?: Quotas }): void {
  const v = validator();
  tenancyId(v, "tenant", req.tenant);
  if (req.id !== "") tenancyId(v, "id", req.id);
  v.requiredText("name", req.name, 128).text("description", req.description, 1024);
  quotas(v, "quotas", req.quotas, false);
  v.check();
}

export function validateProjectList(req: { tenant?: string }): void {
  const v = validator();
  if (req.tenant !== undefined) tenancyId(v, "tenant", req.tenant);
  v.check();
}
