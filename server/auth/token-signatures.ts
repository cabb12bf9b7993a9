import { type CryptoKey, jwtVerify } from "jose";
import { unauthenticated } from "../errors.js";
import { SIGNING_ALG } from "./signing-keys.js";

/** The issuer every metal token names. */
export const TOKEN_ISSUER = "metal";
const SIGNATURE_CACHE_MAX = 10_000;

export interface TokenClaims {
  jti: string | undefined;
  exp: number | undefined;
}

/**
 * The claims of a metal token whose signature verifies with the key it names
 * (issuer "metal", the signing algorithm, unexpired), for metal-api's token
 * authority and masterdata-api's verifier alike. A token's signature and
 * claims never change, so each secret is verified once (an Ed25519 verify was
 * the largest cost of a unary read); only secrets that verified are kept, so
 * garbage cannot fill the cache. Expiry is still checked on every call;
 * revocation is the token row's business, not this one's.
 */
export function createSignatureCheck(keyFor: (secret: string) => Promise<CryptoKey | undefined>): (secret: string) => Promise<TokenClaims> {
  const signatures = new Map<string, TokenClaims>();
  return async (secret) => {
    const known = signatures.get(secret);
    if (known) {
      if (known.exp !== undefined && known.exp <= Math.floor(Date.now() / 1000)) throw unauthenticated("the token has expired");
      return known;
    }
    // Outside the try below: a failing key read is the database's trouble, not the token's.
    const publicKey = await keyFor(secret);
    if (!publicKey) throw unauthenticated("the token is not valid");
    let claims: TokenClaims;
    try {
      const { payload } = await jwtVerify(secret, publicKey, { issuer: TOKEN_ISSUER, algorithms: [SIGNING_ALG] });
      claims = { jti: payload.jti, exp: payload.exp };
    } catch (err) {
      throw unauthenticated((err as { code?: string }).code === "ERR_JWT_EXPIRED" ? "the token has expired" : "the token is not valid");
    }
    if (signatures.size >= SIGNATURE_CACHE_MAX) signatures.clear();
    signatures.set(secret, claims);
    return claims;
  };
}
