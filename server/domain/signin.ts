import { AdminRole, ProjectRole, type Roles, TenantRole } from "./roles.js";

/**
 * Rules of OpenID Connect sign-in (docs/signin.md) that need no I/O: which
 * user an ID token names, whether a stored user belongs to the signed-in
 * subject, and what a sign-in token grants.
 */

/** What a client proved: an ID token it got itself, or a code (with its PKCE verifier) for the server to redeem. */
export type Proof = { idToken: string } | { code: string; codeVerifier: string; redirectUri: string };

/** `created_by` of every token issued at sign-in: what tells them apart from operator-issued and self-minted tokens. */
export const SIGN_IN_CREATOR = "sign-in";

/** Annotations on a user's tenant naming the identity that owns it. */
export const ISSUER_ANNOTATION = "signin.metal/issuer";
export const SUBJECT_ANNOTATION = "signin.metal/subject";

/** Masterdata's id rule (server/masterdata/validate/common.ts), repeated here because domain rules import nothing else. */
const USER_ID = /^[a-z0-9]([a-z0-9._@-]*[a-z0-9])?$/;
const MAX_USER_ID = 128;
/** OpenID Connect Core: a subject is at most 255 ASCII characters; annotations hold at most 256. */
const MAX_SUBJECT = 255;

export type UserIdResult = { ok: true; id: string } | { ok: false; reason: string };

/**
 * The user id an ID token names: the configured claim's value, lower-cased
 * (e-mail addresses and logins compare case-insensitively at every issuer we
 * know). The `email` claim counts only when the issuer does not say it is
 * unverified (`email_verified: false`): an unverified address proves nothing.
 */
export function userIdFromClaims(claims: Record<string, unknown>, claim: string): UserIdResult {
  const value = claims[claim];
  if (typeof value !== "string" || value === "") return { ok: false, reason: `the ID token carries no "${claim}" claim to name the user` };
  if (claim === "email" && claims.email_verified === false) return { ok: false, reason: "the issuer says the e-mail address is not verified" };
  const id = value.trim().toLowerCase();
  if (id.length > MAX_USER_ID || !USER_ID.test(id)) {
    return { ok: false, reason: `the "${claim}" claim cannot be a user id (lowercase letters, digits, '.', '_', '@', '-', at most ${MAX_USER_ID} characters)` };
  }
  return { ok: true, id };
}

/** The ID token's subject, if it is one a user can be tied to. */
export function validSubject(sub: unknown): sub is string {
  return typeof sub === "string" && sub.length > 0 && sub.length <= MAX_SUBJECT && /^[\x20-\x7e]+$/.test(sub);
}

/** The annotations a user's tenant is created with. */
export const identityAnnotations = (issuer: string, subject: string): Record<string, string> => ({ [ISSUER_ANNOTATION]: issuer, [SUBJECT_ANNOTATION]: subject });

/**
 * Whether a stored tenant is this identity's: it must carry the same issuer
 * and subject. A tenant without them was made by an operator (or is an
 * organisation) and is nobody's sign-in; a different subject is a different
 * person who happens to have the same e-mail address or login now.
 */
export function ownershipRefusal(annotations: Record<string, string>, issuer: string, subject: string): string | undefined {
  const i = annotations[ISSUER_ANNOTATION];
  const s = annotations[SUBJECT_ANNOTATION];
  if (i === undefined || s === undefined) return "belongs to a tenant that was not created by sign-in";
  if (i !== issuer || s !== subject) return "belongs to another identity";
  return undefined;
}

/** A membership as masterdata stores it: the roles' numbers are the token's (viewer 1, editor 2, owner 3). */
export interface Membership {
  readonly id: string;
  readonly role: number;
}

/** Grants are bounded like a token's (server/validate/token.ts): at most 256 tenants and 256 projects. */
export const MAX_GRANTS = 256;

/**
 * What a sign-in token grants: owner of the user's own tenant, and the role
 * of every tenant and project membership the user has at sign-in (a higher
 * role wins where two name the same thing). Nothing operator-wide: operators
 * keep their operator-issued tokens.
 */
export function signInRoles(userId: string, tenants: readonly Membership[], projects: readonly Membership[]): Roles {
  const tenantRoles: Record<string, TenantRole> = { [userId]: TenantRole.OWNER };
  for (const m of tenants) {
    if (!(m.role >= TenantRole.VIEWER && m.role <= TenantRole.OWNER)) continue;
    tenantRoles[m.id] = Math.max(tenantRoles[m.id] ?? 0, m.role) as TenantRole;
  }
  const projectRoles: Record<string, ProjectRole> = {};
  for (const m of projects) {
    if (!(m.role >= ProjectRole.VIEWER && m.role <= ProjectRole.OWNER)) continue;
    projectRoles[m.id] = Math.max(projectRoles[m.id] ?? 0, m.role) as ProjectRole;
  }
  return { adminRole: AdminRole.UNSPECIFIED, tenantRoles, projectRoles, infraPartition: "" };
}

/** A new user's tenant quotas (METAL_SIGNIN_USER_QUOTAS) as masterdata's QuotaSet: a kind left out stays unlimited. */
export function userQuotaSet(q: Partial<Record<"machine" | "ip" | "network" | "project", number>>) {
  const one = (max: number | undefined) => (max === undefined ? undefined : { max });
  return { machine: one(q.machine), ip: one(q.ip), network: one(q.network), project: one(q.project) };
}
