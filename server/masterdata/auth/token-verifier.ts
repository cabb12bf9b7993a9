import type { TokenAuthority } from "../../auth/token-authority.js";
import { createSignatureCheck } from "../../auth/token-signatures.js";
import { toRoles } from "../../convert/token.js";
import type { DbHandle } from "../../db/handle.js";
import { AdminRole, noRoles, type Principal } from "../../domain/roles.js";
import { unauthenticated } from "../../errors.js";
import { metalCredentialRepository as credentials, type TokenGrant } from "../repositories/metal-credential-repository.js";
import type { PublicKeyRing } from "./public-keys.js";
import { claimsServiceCredential, verifyServiceCredential } from "./service-credential.js";

/** As metal-api's authority: a revocation shows here within this long (masterdata-api is not on metal-api's bus). */
const ROW_CACHE_MS = 5_000;
const ROW_CACHE_MAX = 10_000;

/** Principals made from metal-api's service credential; an object in here cannot be made from a token. */
const metalApiPrincipals = new WeakSet<Principal>();

/** Whether the caller is metal-api itself (its service credential), not an operator's token. */
export const isMetalApi = (p: Principal | undefined): boolean => p !== undefined && metalApiPrincipals.has(p);

/**
 * metal-api's token verification, step for step (server/auth/token-authority.ts
 * verify: the key the token names, EdDSA signature, issuer "metal", expiry,
 * then the token row: known, not revoked, not expired; the same answers), over
 * a read-only view of the metal database. It also takes metal-api's service
 * credential (service-credential.ts), as an operator admin of masterdata.
 * It is what the one auth interceptor (server/interceptors/auth.ts) needs of
 * the token authority, so that interceptor decides masterdata-api's calls
 * exactly as it decides metal-api's; what only an issuer does is not here.
 */
export function createTokenVerifier(db: DbHandle, keys: PublicKeyRing): Pick<TokenAuthority, "verify" | "forget"> {
  const rows = new Map<string, { row: Promise<TokenGrant | undefined>; at: number }>();

  const claimsOf = createSignatureCheck((secret) => keys.keyFor(secret));

  function tokenRow(id: string): Promise<TokenGrant | undefined> {
    const hit = rows.get(id);
    if (hit && Date.now() - hit.at < ROW_CACHE_MS) return hit.row;
    if (rows.size >= ROW_CACHE_MAX) rows.clear();
    const entry = { row: credentials.tokenGrant(db, id), at: Date.now() };
    rows.set(id, entry);
    entry.row.catch(() => rows.get(id) === entry && rows.delete(id));
    return entry.row;
  }

  return {
    async verify(secret) {
      if (claimsServiceCredential(secret)) {
        const { replica, expiresAt } = await verifyServiceCredential(keys, secret);
        const principal: Principal = { tokenId: `metal-api/${replica}`, subject: `metal-api ${replica}`, expiresAt, roles: { ...noRoles(), adminRole: AdminRole.ADMIN } };
        metalApiPrincipals.add(principal);
        return principal;
      }
      const { jti } = await claimsOf(secret);
      const row = jti ? await tokenRow(jti) : undefined;
      if (!row) throw unauthenticated("the token is not known to this control plane");
      if (row.revokedAt) throw unauthenticated("the token has been revoked");
      if (row.expiresAt.getTime() <= Date.now()) throw unauthenticated("the token has expired");
      return { tokenId: row.id, subject: row.subject, expiresAt: row.expiresAt, roles: toRoles(row.roles) };
    },
    forget(tokenId) {
      rows.delete(tokenId);
    },
  };
}
