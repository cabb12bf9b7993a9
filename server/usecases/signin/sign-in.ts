import { createHash } from "node:crypto";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { ProjectMemberService } from "../../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberRole, type TenantMemberService } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import type { Tenant, TenantService } from "../../../gen/masterdata/v1/tenant_pb.js";
import { type IdTokenClaims, idTokenUsableUntil, type OidcIssuer } from "../../auth/oidc/issuer.js";
import type { TokenAuthority } from "../../auth/token-authority.js";
import type { OidcSettings } from "../../config.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import type { TokenRow } from "../../db/schema/index.js";
import { noRoles, type Roles } from "../../domain/roles.js";
import { identityAnnotations, MAX_GRANTS, type Membership, ownershipRefusal, type Proof, SIGN_IN_CREATOR, signInRoles, userIdFromClaims, userQuotaSet, validSubject } from "../../domain/signin.js";
import { failedPrecondition, permissionDenied, unauthenticated } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { signInProofRepository as proofs } from "../../repositories/sign-in-proof-repository.js";
import { auditTrail, errorMessageOf, newEntry, outcomeOf } from "../audit/entries.js";

const MAX_DESCRIPTION = 256;
/** The method a sign-in's audit entry names (the interceptor does not record public methods). */
const EXCHANGE_METHOD = "/metal.api.v1.SignInService/Exchange";

/** Masterdata as sign-in needs it: through its generated clients only (DESIGN §1). */
export interface SignInMasterdata {
  tenants: Client<typeof TenantService>;
  tenantMembers: Client<typeof TenantMemberService>;
  projectMembers: Client<typeof ProjectMemberService>;
}

export interface SignInDeps {
  /** Undefined when METAL_OIDC_ISSUER is not set: sign-in is off. */
  issuer: OidcIssuer | undefined;
  authority: TokenAuthority;
  db: DbHandle;
  masterdata: SignInMasterdata;
  log: Logger;
}

export interface SignInResult {
  row: TokenRow;
  secret: string;
  user: string;
  created: boolean;
}

export interface SignIn {
  /** Where and how to sign in; undefined when sign-in is off. */
  settings(): { issuer: string; clientId: string; scopes: readonly string[]; userClaim: string } | undefined;
  /** The issuer's authorization endpoint, "" while it cannot be reached (or sign-in is off). */
  authorizationEndpoint(): Promise<string>;
  /**
   * Verifies the proof, finds or creates the user, and issues a metal token.
   * A sign-in of a verified identity is recorded in the audit trail (the
   * token with its entry in one transaction; a refused one on its own), under
   * `requestId`. Proofs that do not verify leave no entry: anyone can send them.
   */
  exchange(proof: Proof, description: string, requestId: string): Promise<SignInResult>;
}

/**
 * OpenID Connect sign-in (docs/signin.md). The user is a tenant in
 * masterdata whose id comes from the configured claim; the first sign-in
 * creates it, marked with the issuer and subject, and only that identity
 * signs in as it afterwards. The token's roles are read from the
 * memberships at sign-in and stay as they are for its (bounded) life.
 */
export function createSignIn({ issuer, authority, db, masterdata, log }: SignInDeps): SignIn {
  function enabled(): OidcIssuer {
    if (!issuer) throw failedPrecondition("sign-in is not configured on this control plane (METAL_OIDC_ISSUER); ask an operator for a token");
    return issuer;
  }

  async function verified(proof: Proof): Promise<IdTokenClaims> {
    const iss = enabled();
    if ("idToken" in proof) return iss.verifyIdToken(proof.idToken);
    return iss.redeemCode(proof.code, proof.codeVerifier, proof.redirectUri);
  }

  /** The user's tenant: found and checked, or created. */
  async function userTenant(userId: string, claims: IdTokenClaims, settings: Pick<OidcSettings, "issuer" | "userQuotas">): Promise<{ tenant: Tenant; created: boolean }> {
    const sub = claims.sub as string;
    const existing = await getTenant(userId);
    if (existing) return { tenant: checkOwner(existing, userId, settings.issuer, sub), created: false };
    const name = typeof claims.name === "string" && claims.name.trim() !== "" ? claims.name.trim().slice(0, 128) : userId;
    try {
      const { tenant } = await masterdata.tenants.create({
        tenant: {
          meta: { id: userId, annotations: identityAnnotations(settings.issuer, sub), labels: ["user"] },
          name,
          description: `signed up through ${settings.issuer}`.slice(0, 1024),
          quotas: userQuotaSet(settings.userQuotas),
        },
      });
      await ownMembership(userId);
      log.info({ user: userId }, "sign-in created a user");
      return { tenant: tenant!, created: true };
    } catch (err) {
      // Two first sign-ins at once: the other one created it; it must still be ours.
      if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
      const raced = await getTenant(userId);
      // Masterdata never reuses the id of a deleted tenant: that user stays deleted.
      if (!raced) throw permissionDenied(`permission denied: the user id "${userId}" belonged to a deleted tenant and is not reused`);
      return { tenant: checkOwner(raced, userId, settings.issuer, sub), created: false };
    }
  }

  /**
   * The user owns their own tenant as a member too, so that tenant
   * self-service (members, last-owner rule) sees them like any other owner.
   * Idempotent: a retried first sign-in finds it there.
   */
  async function ownMembership(userId: string): Promise<void> {
    try {
      await masterdata.tenantMembers.create({ tenantMember: { tenantId: userId, memberId: userId, role: TenantMemberRole.OWNER } });
    } catch (err) {
      if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
    }
  }

  function checkOwner(tenant: Tenant, userId: string, iss: string, sub: string): Tenant {
    const refusal = ownershipRefusal(tenant.meta?.annotations ?? {}, iss, sub);
    if (refusal) throw permissionDenied(`permission denied: the user id "${userId}" ${refusal}; an operator can link it (docs/signin.md)`);
    return tenant;
  }

  async function getTenant(id: string): Promise<Tenant | undefined> {
    try {
      return (await masterdata.tenants.get({ id })).tenant;
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return undefined;
      throw err;
    }
  }

  /** Every membership of the user, page by page, bounded like a token's grants. */
  async function memberships(userId: string): Promise<{ tenants: Membership[]; projects: Membership[] }> {
    const tenants: Membership[] = [];
    let pageToken = "";
    do {
      const page = await masterdata.tenantMembers.find({ memberId: userId, paging: { limit: 1000, pageToken } });
      tenants.push(...page.tenantMembers.map((m) => ({ id: m.tenantId, role: m.role })));
      pageToken = page.nextPageToken;
    } while (pageToken !== "" && tenants.length <= MAX_GRANTS);
    const projects: Membership[] = [];
    pageToken = "";
    do {
      const page = await masterdata.projectMembers.find({ tenantId: userId, paging: { limit: 1000, pageToken } });
      projects.push(...page.projectMembers.map((m) => ({ id: m.projectId, role: m.role })));
      pageToken = page.nextPageToken;
    } while (pageToken !== "" && projects.length <= MAX_GRANTS);
    // The user's own tenant takes one of the tenant grants.
    if (tenants.length >= MAX_GRANTS || projects.length > MAX_GRANTS) {
      throw failedPrecondition(`user "${userId}" is a member of more than ${MAX_GRANTS} tenants or projects; a token cannot carry that many roles`);
    }
    return { tenants, projects };
  }

  /**
   * A membership removed or lowered between the read above and the token's
   * commit: its removal capped the tokens that existed then, not this one.
   * Read again now that the token is committed, and cap what ended (every
   * token of the user, this one included, as a removal does). A removal
   * committed after this read caps the new token itself.
   */
  async function dropEndedGrants(userId: string, issued: Roles): Promise<void> {
    const { tenants, projects } = await memberships(userId);
    const now = signInRoles(userId, tenants, projects);
    for (const [id, role] of Object.entries(issued.tenantRoles)) {
      const current = now.tenantRoles[id] ?? 0;
      if (current < role) await authority.capSubjectGrant(db, userId, { tenant: id }, current);
    }
    for (const [id, role] of Object.entries(issued.projectRoles)) {
      const current = now.projectRoles[id] ?? 0;
      if (current < role) await authority.capSubjectGrant(db, userId, { project: id }, current);
    }
  }

  return {
    settings() {
      if (!issuer) return undefined;
      const s = issuer.settings;
      return { issuer: s.issuer, clientId: s.clientId, scopes: s.scopes, userClaim: s.userClaim };
    },

    async authorizationEndpoint() {
      if (!issuer) return "";
      try {
        return await issuer.authorizationEndpoint();
      } catch {
        return "";
      }
    },

    async exchange(proof, description, requestId) {
      const settings = enabled().settings;
      const claims = await verified(proof);
      if (!validSubject(claims.sub)) throw unauthenticated("the ID token is not accepted: its subject is missing or longer than 255 characters");
      const user = userIdFromClaims(claims, settings.userClaim);
      if (!user.ok) throw permissionDenied(`permission denied: ${user.reason}`);
      const entry = (tokenId: string) => newEntry({ method: EXCHANGE_METHOD, principal: { subject: user.id, tokenId, expiresAt: new Date(0), roles: noRoles() }, requestId, request: { user: user.id } });
      // An ID token is good once: whoever else holds it (a log, a proxy, a shared terminal) cannot sign in with it again.
      // An authorization code needs no such record: the issuer redeems each code once.
      const proofUse = "idToken" in proof ? { digest: createHash("sha256").update(proof.idToken).digest("hex"), until: idTokenUsableUntil(claims) } : undefined;
      let replayed = false;
      const refuseReplay = () => {
        replayed = true;
        return unauthenticated("the ID token is not accepted: it was exchanged for a token already; sign in again");
      };
      try {
        // A replay is refused before masterdata is asked anything (a held token costs the server one read).
        if (proofUse && (await proofs.wasUsed(db, proofUse.digest, new Date()))) throw refuseReplay();
        const { created } = await userTenant(user.id, claims, settings);
        const { tenants, projects } = await memberships(user.id);
        const roles = signInRoles(user.id, tenants, projects);
        const text = description.trim() === "" ? `signed in through ${settings.issuer}` : description.trim();
        if (proofUse) await proofs.prune(db, new Date());
        const { row, secret } = await inTransaction(db, async (tx) => {
          if (proofUse && !(await proofs.use(tx, proofUse.digest, proofUse.until))) throw refuseReplay();
          const issued = await authority.issue(tx, {
            subject: user.id,
            description: text.slice(0, MAX_DESCRIPTION),
            roles,
            createdBy: SIGN_IN_CREATOR,
            expiresAt: new Date(Date.now() + settings.tokenTtlMs),
          });
          await auditTrail.record(tx, { ...entry(issued.row.id), targetIds: [user.id, issued.row.id] });
          return issued;
        });
        await dropEndedGrants(user.id, roles);
        // Who signed in, never with what: no token, code or claim values beyond the user id.
        log.info({ user: user.id, tokenId: row.id }, "signed in");
        return { row, secret, user: user.id, created };
      } catch (err) {
        // A verified identity refused (a takeover, a deleted user's id) is worth a trace: only the issuer's users can cause it.
        // So is an ID token presented again: someone other than its user may hold it.
        const e = ConnectError.from(err);
        if (e.code === Code.PermissionDenied || replayed) {
          await auditTrail
            .record(db, { ...entry(""), outcome: outcomeOf(e.code), errorMessage: errorMessageOf(e.code, e.rawMessage) })
            .catch((err2: unknown) => log.error({ err: err2, requestId }, "writing the audit entry of a refused sign-in failed"));
        }
        throw err;
      }
    },
  };
}
