/**
 * The rules of tenant and project self-service (docs/tenancy.md), pure:
 * roles are levels 1 viewer, 2 editor, 3 owner (a higher one includes the
 * lower ones), as TenantRole, ProjectRole and masterdata's membership roles
 * number them.
 */

export const OWNER = 3;

/** A role level as stored: 1, 2 or 3. */
export type RoleLevel = 1 | 2 | 3;

export const isRoleLevel = (n: number): n is RoleLevel => n === 1 || n === 2 || n === 3;

/** Invitation lifetimes: the default and the bounds (milliseconds). */
export const INVITATION_TTL = {
  defaultMs: 7 * 24 * 3600_000,
  minMs: 60_000,
  maxMs: 30 * 24 * 3600_000,
} as const;

/** Pending invitations one tenant or project may have at a time. */
export const MAX_PENDING_INVITATIONS = 100;

/** Why a requested invitation lifetime is refused, or undefined when it is within the bounds. */
export function invitationTtlProblem(ms: number): string | undefined {
  if (!Number.isFinite(ms)) return "must be a duration";
  if (ms < INVITATION_TTL.minMs) return "must be at least 1 minute";
  if (ms > INVITATION_TTL.maxMs) return "must be at most 30 days";
  return undefined;
}

/**
 * Why a change of one membership is refused by the last-owner rule, or
 * undefined when it may go ahead. `newRole` undefined removes the member.
 * `owners` counts the owners the target has now, the member included when it
 * is one: a tenant's owner members; a project's direct owners plus its
 * tenant's owners (they manage the project too). Correct only while the
 * caller holds the lock that serialises changes of the target's members.
 */
export function lastOwnerRefusal(current: RoleLevel, newRole: RoleLevel | undefined, owners: number, what: string): string | undefined {
  if (current !== OWNER) return undefined;
  if (newRole === OWNER) return undefined;
  if (owners > 1) return undefined;
  return newRole === undefined
    ? `${what} would be left without an owner: the last owner cannot leave or be removed; make another member owner first`
    : `${what} would be left without an owner: the last owner cannot be demoted; make another member owner first`;
}

/** Resource limits as stored: a missing key is unlimited. */
export interface QuotaLimits {
  machine?: number;
  ip?: number;
  network?: number;
  project?: number;
}

const PROJECT_QUOTA_KEYS = ["machine", "ip", "network"] as const;

/**
 * A project's quotas under its tenant's: each limit the tenant has is the
 * most a project may have. A limit the project leaves unset (unlimited)
 * becomes the tenant's; a set one above the tenant's is a problem (listed).
 * The project count is the tenant's own business and not part of a project.
 */
export function projectQuotasWithinTenant(tenant: QuotaLimits, requested: QuotaLimits): { quotas: QuotaLimits; problems: string[] } {
  const quotas: QuotaLimits = {};
  const problems: string[] = [];
  for (const key of PROJECT_QUOTA_KEYS) {
    const cap = tenant[key];
    const want = requested[key];
    if (want !== undefined && want < 0) problems.push(`quotas.${key}: ${want} must not be negative`);
    else if (cap !== undefined && want !== undefined && want > cap) problems.push(`quotas.${key}: ${want} exceeds the tenant's limit of ${cap}`);
    const value = want ?? cap;
    if (value !== undefined) quotas[key] = value;
  }
  return { quotas, problems };
}

/** The project roles of a member: the higher of a direct membership and the tenant role. */
export function effectiveMembership(direct: RoleLevel | undefined, viaTenant: RoleLevel | undefined): { role: RoleLevel; inherited: boolean } | undefined {
  if (direct === undefined && viaTenant === undefined) return undefined;
  if (viaTenant !== undefined && (direct === undefined || viaTenant > direct)) return { role: viaTenant, inherited: true };
  return { role: direct!, inherited: false };
}

const MEMBER_ID = /^[a-z0-9]([a-z0-9._@-]*[a-z0-9])?$/;

/**
 * Whether a token subject can be a member: users are tenants, and a tenant id
 * is lowercase letters, digits, '.', '_', '@' and '-' (at most 128). Other
 * subjects (daemons, operators' names) have no memberships.
 */
export const isMemberId = (subject: string): boolean => subject.length <= 128 && MEMBER_ID.test(subject);

/** A project's quotas are the business of its tenant's owners (and operator admins), not of its own members. */
export function mayChangeProjectQuotas(roles: { adminRole: number; tenantRoles: Record<string, number> }, tenantId: string): boolean {
  return roles.adminRole >= 2 || (roles.tenantRoles[tenantId] ?? 0) >= OWNER;
}
