import { jwtVerify, SignJWT } from "jose";
import type { DbHandle } from "../db/handle.js";
import { unauthenticated } from "../errors.js";
import { tokenRepository } from "../repositories/token-repository.js";
import { createKeyRing } from "./signing-keys.js";

/**
 * Credentials replicas present to each other on internal methods
 * (metal.internal.v1). A replica signs one for itself with the signing key
 * every replica shares (it lives in the database), so any replica can check
 * any other's, and nothing outside the control plane can make one.
 *
 * It is kept apart from metal's bearer tokens on purpose, in both directions:
 * - its issuer is not "metal", so the token authority refuses it on every
 *   public method ("the token is not valid");
 * - this verifier wants issuer "metal-replica" and the internal audience, so
 *   every token the API mints (tenant, operator, infra) fails here.
 * No API issues it: the only code that signs with this issuer is below.
 * It lives a minute and is renewed before half of that has passed; a stream
 * is checked once, when it opens.
 */
export const REPLICA_ISSUER = "metal-replica";
export const REPLICA_AUDIENCE = "metal.internal.v1.ReplicaService";
const ALG = "EdDSA";
const LIFETIME_S = 60;
const RENEW_AFTER_MS = 25_000;

export interface ReplicaCredentials {
  /** A credential naming this replica, for the Authorization header of an internal call. */
  current(): Promise<string>;
  /** The replica that signed `secret`; Unauthenticated when it is not a valid replica credential. */
  verify(secret: string): Promise<string>;
}

/** Loads the shared signing key (created by the token authority at start-up) and signs and checks replica credentials with it. */
export async function createReplicaCredentials(db: DbHandle, self: string): Promise<ReplicaCredentials> {
  const row = await tokenRepository.newestSigningKey(db);
  if (!row) throw new Error("no signing key in the database: the token authority creates it before replica credentials are made");
  // The token authority's keys: signed with the newest, checked with the one the credential names (see signing-keys.ts).
  const keys = createKeyRing(db);
  let cached: { secret: string; at: number } | undefined;

  return {
    async current() {
      if (cached && Date.now() - cached.at < RENEW_AFTER_MS) return cached.secret;
      const now = Math.floor(Date.now() / 1000);
      const { kid, privateKey } = await keys.signer(db);
      const secret = await new SignJWT({})
        .setProtectedHeader({ alg: ALG, kid, typ: "metal-replica+jwt" })
        .setIssuer(REPLICA_ISSUER)
        .setAudience(REPLICA_AUDIENCE)
        .setSubject(self)
        .setIssuedAt(now)
        .setExpirationTime(now + LIFETIME_S)
        .sign(privateKey);
      cached = { secret, at: Date.now() };
      return secret;
    },

    async verify(secret) {
      const publicKey = await keys.keyFor(secret);
      if (!publicKey) throw unauthenticated("this method takes only a control-plane replica's credential");
      try {
        const { payload } = await jwtVerify(secret, publicKey, { issuer: REPLICA_ISSUER, audience: REPLICA_AUDIENCE, algorithms: [ALG], typ: "metal-replica+jwt", maxTokenAge: `${LIFETIME_S}s` });
        if (typeof payload.sub !== "string" || payload.sub === "") throw new Error("no subject");
        return payload.sub;
      } catch {
        throw unauthenticated("this method takes only a control-plane replica's credential");
      }
    },
  };
}
