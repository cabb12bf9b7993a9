import { decodeProtectedHeader, jwtVerify, SignJWT } from "jose";
import { createKeyRing, SIGNING_ALG } from "../../auth/signing-keys.js";
import type { DbHandle } from "../../db/handle.js";
import { unauthenticated } from "../../errors.js";
import type { PublicKeyRing } from "./public-keys.js";

/**
 * The credential metal-api presents to a masterdata-api of its own
 * (MASTERDATA_URL): signed by the replica with the control plane's newest
 * signing key, like the replicas' credentials among themselves, and kept
 * apart from every other credential:
 * - issuer "metal-api", not "metal": metal-api's token authority refuses it
 *   on every method ("the token is not valid");
 * - audience "masterdata.v1" and its own type: a replica credential (issuer
 *   "metal-replica") or any metal token fails here, and this one fails on
 *   metal-api's internal methods;
 * - it lives a minute and is renewed before half of that has passed, so no
 *   revocation list is needed: nobody without the signing key makes one.
 */
export const SERVICE_ISSUER = "metal-api";
export const SERVICE_AUDIENCE = "masterdata.v1";
export const SERVICE_TYP = "metal-service+jwt";
const LIFETIME_S = 60;
const RENEW_AFTER_MS = 25_000;

/** metal-api's side: the credential for the Authorization header of its calls to masterdata-api. */
export interface ServiceCredentialSigner {
  current(): Promise<string>;
}

/** Signs with the newest key in the metal database (as tokens are signed); `self` names the replica. */
export function createServiceCredentialSigner(db: DbHandle, self: string): ServiceCredentialSigner {
  const keys = createKeyRing(db);
  let cached: { secret: string; at: number } | undefined;
  return {
    async current() {
      if (cached && Date.now() - cached.at < RENEW_AFTER_MS) return cached.secret;
      const now = Math.floor(Date.now() / 1000);
      const { kid, privateKey } = await keys.signer(db);
      const secret = await new SignJWT({})
        .setProtectedHeader({ alg: SIGNING_ALG, kid, typ: SERVICE_TYP })
        .setIssuer(SERVICE_ISSUER)
        .setAudience(SERVICE_AUDIENCE)
        .setSubject(self)
        .setIssuedAt(now)
        .setExpirationTime(now + LIFETIME_S)
        .sign(privateKey);
      cached = { secret, at: Date.now() };
      return secret;
    },
  };
}

/** Whether a bearer secret claims to be a service credential (its header says so); it is verified only then. */
export function claimsServiceCredential(secret: string): boolean {
  try {
    return decodeProtectedHeader(secret).typ === SERVICE_TYP;
  } catch {
    return false;
  }
}

/** masterdata-api's side: the replica that signed `secret`, or Unauthenticated. */
export async function verifyServiceCredential(keys: PublicKeyRing, secret: string): Promise<{ replica: string; expiresAt: Date }> {
  const refused = () => unauthenticated("the service credential is not valid");
  const publicKey = await keys.keyFor(secret);
  if (!publicKey) throw refused();
  try {
    const { payload } = await jwtVerify(secret, publicKey, {
      issuer: SERVICE_ISSUER,
      audience: SERVICE_AUDIENCE,
      algorithms: [SIGNING_ALG],
      typ: SERVICE_TYP,
      maxTokenAge: `${LIFETIME_S}s`,
    });
    if (typeof payload.sub !== "string" || payload.sub === "" || payload.exp === undefined) throw new Error("no subject");
    return { replica: payload.sub, expiresAt: new Date(payload.exp * 1000) };
  } catch {
    throw refused();
  }
}
