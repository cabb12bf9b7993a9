import type { Duration } from "@bufbuild/protobuf/wkt";
import { AdminRole, ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import type { TokenRoles } from "../../gen/metal/api/v1/token_pb.js";
import { type Validator, validator } from "./validator.js";

export const DEFAULT_TOKEN_TTL_MS = 24 * 3600_000;
const MIN_TTL_MS = 60_000;
const MAX_TTL_MS = 366 * 24 * 3600_000;

function roles(v: Validator, r: TokenRoles | undefined): void {
  if (!r) return;
  if (r.adminRole !== 0) v.enumValue("roles.admin_role", r.adminRole, AdminRole);
  const projects = Object.entries(r.projectRoles);
  if (projects.length > 256) v.add("roles.project_roles", "must have at most 256 entries");
  for (const [p, role] of projects) {
    v.id(`roles.project_roles["${p}"]`, p, { max: 128 }).enumValue(`roles.project_roles["${p}"]`, role, ProjectRole);
  }
  const tenants = Object.entries(r.tenantRoles);
  if (tenants.length > 256) v.add("roles.tenant_roles", "must have at most 256 entries");
  for (const [t, role] of tenants) {
    v.id(`roles.tenant_roles["${t}"]`, t, { max: 128 }).enumValue(`roles.tenant_roles["${t}"]`, role, TenantRole);
  }
  if (r.infraPartition !== "") v.id("roles.infra_partition", r.infraPartition);
}

/** The lifetime a request asks for, in milliseconds, checked against the bounds. */
export function ttlMs(v: Validator, d: Duration | undefined): number {
  if (!d) return DEFAULT_TOKEN_TTL_MS;
  const ms = Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
  if (ms < MIN_TTL_MS) v.add("expires_in", "must be at least 1 minute");
  else if (ms > MAX_TTL_MS) v.add("expires_in", "must be at most 1 year");
  return ms;
}

/** Subjects are user logins or daemon names: letters, digits and `@._-`. */
export function subject(v: Validator, path: string, s: string): void {
  if (s === "") v.add(path, "is required");
  else if (!/^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$/.test(s)) v.add(path, `"${s.slice(0, 64)}" must be up to 128 letters, digits, '@', '.', '_' or '-'`);
}

export function validateTokenCreate(req: { description: string; roles?: TokenRoles; expiresIn?: Duration; subject?: string }): number {
  const v = validator().text("description", req.description, 256);
  if (req.subject !== undefined) subject(v, "subject", req.subject);
  roles(v, req.roles);
  const ms = ttlMs(v, req.expiresIn);
  v.check();
  return ms;
}

export function validateTokenId(id: string): void {
  validator().uuid("id", id).check();
}

export function validateTokenUpdate(req: { id: string; description: string }): void {
  validator().uuid("id", req.id).text("description", req.description, 256).check();
}
