import { SIGN_IN_CREATOR } from "./signin.js";

/**
 * Why a token cannot be refreshed, or undefined when it can: only a live
 * token is replaced, and never one issued at sign-in (docs/signin.md): its
 * life and roles are bounded by the sign-in, which a refresh would extend
 * past a user disabled at the identity provider.
 */
export function refreshRefusal(token: { revokedAt: Date | null; expiresAt: Date; createdBy?: string }, now: number): string | undefined {
  if (token.revokedAt) return "has been revoked";
  if (token.expiresAt.getTime() <= now) return "has expired";
  if (token.createdBy === SIGN_IN_CREATOR) return "was issued at sign-in (sign in again for a new one)";
  return undefined;
}

/**
 * The expiry of a refreshed token: the old token's lifetime counted from now
 * (the lifetime it was issued with, so the bounds checked at issue still hold),
 * never past its parent's expiry, as a minted token never outlives its parent.
 */
export function refreshedExpiry(token: { createdAt: Date; expiresAt: Date }, now: number, parentExpiresAt?: Date): Date {
  const lifetime = token.expiresAt.getTime() - token.createdAt.getTime();
  const until = now + lifetime;
  return new Date(parentExpiresAt === undefined ? until : Math.min(until, parentExpiresAt.getTime()));
}
