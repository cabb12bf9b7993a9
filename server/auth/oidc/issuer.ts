import { Code, ConnectError } from "@connectrpc/connect";
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from "jose";
import * as oidc from "openid-client";
import type { OidcSettings } from "../../config.js";
import { exhausted, unauthenticated } from "../../errors.js";

/** An ID token is at most this old when it is exchanged: proof of a sign-in now, not of one last week. */
export const MAX_ID_TOKEN_AGE_S = 600;
/** Clocks of the issuer and this server may differ this much. */
export const CLOCK_TOLERANCE_S = 60;
/** Bounds of what a caller may hand over (an ID token is a few KiB at most). */
export const MAX_ID_TOKEN_BYTES = 16 * 1024;
/** Discovery is read again after this (a new jwks_uri or token endpoint is picked up without a restart). */
const DISCOVERY_MAX_AGE_MS = 3_600_000;
/** Timeouts of calls to the issuer: a slow issuer must not hold sign-ins for long. */
const ISSUER_TIMEOUT_S = 10;
/** A failed discovery is answered from memory this long: a flood of sign-ins while the issuer is down does not become a flood of requests to it. */
const DISCOVERY_RETRY_MS = 5_000;
/** Code redemptions in flight at once: each is a request to the issuer's token endpoint, and the caller needs no token. */
const MAX_REDEEMS_IN_FLIGHT = 32;
/** Signature algorithms accepted on ID tokens: asymmetric only (a symmetric one would be keyed by the client secret, which public clients do not have). */
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

/** The claims of a verified ID token. */
export type IdTokenClaims = JWTPayload & Record<string, unknown>;

/** The trusted issuer: verifies ID tokens against its published keys and redeems authorization codes. */
export interface OidcIssuer {
  readonly settings: OidcSettings;
  /** The claims of a valid, fresh ID token for our client; Unauthenticated otherwise, Unavailable when the issuer cannot be reached. */
  verifyIdToken(idToken: string): Promise<IdTokenClaims>;
  /** The issuer's authorization endpoint (from discovery); Unavailable when the issuer cannot be reached. */
  authorizationEndpoint(): Promise<string>;
  /** Redeems an authorization code (with its PKCE verifier) at the issuer and returns the ID token's verified claims. */
  redeemCode(code: string, codeVerifier: string, redirectUri: string): Promise<IdTokenClaims>;
}

const isLoopback = (u: URL) => u.hostname === "127.0.0.1" || u.hostname === "localhost" || u.hostname === "[::1]";

const unavailable = (what: string) => new ConnectError(`the identity provider cannot be reached (${what}); try again later`, Code.Unavailable);

/**
 * Discovery (`/.well-known/openid-configuration`) happens on first use and
 * is kept for an hour; a failed discovery is not kept, the next sign-in
 * tries again. The issuer's keys (JWKS) are fetched on demand and cached by
 * jose: refetched when a token names an unknown key id (at most every 30 s)
 * and otherwise every 10 minutes.
 */
export function createOidcIssuer(settings: OidcSettings): OidcIssuer {
  const issuerUrl = new URL(settings.issuer);
  const insecure = issuerUrl.protocol === "http:" && isLoopback(issuerUrl);
  let redeeming = 0;
  let discovered: { at: number; config: Promise<{ config: oidc.Configuration; jwks: ReturnType<typeof createRemoteJWKSet> }> } | undefined;

  function configuration() {
    if (discovered && Date.now() - discovered.at < DISCOVERY_MAX_AGE_MS) return discovered.config;
    const raw = (async () => {
      const auth = settings.clientSecret === undefined ? oidc.None() : oidc.ClientSecretPost(settings.clientSecret);
      const config = await oidc.discovery(issuerUrl, settings.clientId, undefined, auth, {
        timeout: ISSUER_TIMEOUT_S,
        execute: insecure ? [oidc.allowInsecureRequests] : [],
      });
      const jwksUri = config.serverMetadata().jwks_uri;
      if (!jwksUri) throw new Error("the issuer publishes no jwks_uri");
      const jwks = createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: ISSUER_TIMEOUT_S * 1000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
      return { config, jwks };
    })();
    const entry = {
      at: Date.now(),
      config: raw.catch(() => {
        // Kept for a few seconds (as if discovered that long before its age runs out), then tried again.
        if (discovered === entry) entry.at = Date.now() - DISCOVERY_MAX_AGE_MS + DISCOVERY_RETRY_MS;
        throw unavailable("discovery failed");
      }),
    };
    // Nobody may be waiting when it fails (the last caller gave up): no unhandled rejection.
    entry.config.catch(() => {});
    discovered = entry;
    return entry.config;
  }

  async function verifyIdToken(idToken: string): Promise<IdTokenClaims> {
    if (idToken.length === 0 || idToken.length > MAX_ID_TOKEN_BYTES) throw unauthenticated("the ID token is empty or too long");
    const { jwks } = await configuration();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, jwks, {
        issuer: settings.issuer,
        audience: settings.clientId,
        algorithms: ALGORITHMS,
        clockTolerance: CLOCK_TOLERANCE_S,
        maxTokenAge: MAX_ID_TOKEN_AGE_S,
        requiredClaims: ["sub", "iat", "exp"],
      }));
    } catch (err) {
      throw unauthenticated(`the ID token is not accepted: ${reason(err)}`);
    }
    // OpenID Connect Core 3.1.3.7: with several audiences, the authorized party must be us.
    if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== settings.clientId) throw unauthenticated("the ID token is not accepted: it was issued to another client (azp)");
    if (payload.azp !== undefined && payload.azp !== settings.clientId) throw unauthenticated("the ID token is not accepted: it was issued to another client (azp)");
    return payload as IdTokenClaims;
  }

  return {
    settings,
    verifyIdToken,
    async authorizationEndpoint() {
      const { config } = await configuration();
      return config.serverMetadata().authorization_endpoint ?? "";
    },
    async redeemCode(code, codeVerifier, redirectUri) {
      if (redeeming >= MAX_REDEEMS_IN_FLIGHT) throw exhausted("too many sign-ins at once; try again in a moment");
      redeeming++;
      try {
        return await redeem(code, codeVerifier, redirectUri);
      } finally {
        redeeming--;
      }
    },
  };

  async function redeem(code: string, codeVerifier: string, redirectUri: string): Promise<IdTokenClaims> {
    const { config } = await configuration();
    // The callback as the issuer sent it; `iss` is added where the issuer says it sends one (RFC 9207), since this is the only issuer we trust.
    const callback = new URL(redirectUri);
    callback.searchParams.set("code", code);
    if (config.serverMetadata().authorization_response_iss_parameter_supported) callback.searchParams.set("iss", settings.issuer);
    let idToken: string | undefined;
    try {
      const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: codeVerifier, idTokenExpected: true });
      idToken = tokens.id_token;
    } catch (err) {
      throw codeRefusal(err);
    }
    if (!idToken) throw unauthenticated("the issuer returned no ID token for the code");
    // The same checks as an ID token handed over directly (signature by the issuer's keys included).
    return verifyIdToken(idToken);
  }
}

/** jose's reason in words that leak nothing of the token; the issuer's keys out of reach is Unavailable, not the caller's fault. */
function reason(err: unknown): string {
  const name = (err as { name?: string }).name;
  if (name === "TypeError" || name === "AbortError" || name === "TimeoutError") throw unavailable("reading its keys failed");
  const code = (err as { code?: string }).code;
  const claim = (err as { claim?: string }).claim;
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return "it has expired";
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      if (claim === "iss") return "it was issued by another issuer";
      if (claim === "aud") return "it was issued to another client (aud)";
      if (claim === "iat") return `it was issued more than ${MAX_ID_TOKEN_AGE_S / 60} minutes ago or in the future; sign in again`;
      return `its "${claim ?? "?"}" claim is not valid`;
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return "its signature does not verify";
    case "ERR_JWKS_NO_MATCHING_KEY":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return "it is not signed by a key of the issuer";
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return "its signature algorithm is not accepted";
    case "ERR_JWKS_TIMEOUT":
      throw unavailable("reading its keys timed out");
    default:
      return "it is not a valid signed JWT";
  }
}

/** The issuer's refusal of a code (invalid_grant: used, expired, wrong verifier or redirect URI) is the caller's; anything else is the issuer's trouble. */
function codeRefusal(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const e = err as { error?: unknown; code?: unknown; name?: unknown };
  if (typeof e.error === "string" && /^[a-z_]{1,64}$/.test(e.error)) {
    return e.error === "invalid_grant" || e.error === "invalid_request"
      ? unauthenticated(`the issuer refused the authorization code (${e.error}): it is used, expired, or the verifier or redirect URI does not match`)
      : unauthenticated(`the issuer refused the authorization code (${e.error})`);
  }
  if (e.name === "AbortError" || e.name === "TimeoutError" || e.name === "TypeError") return unavailable("the token endpoint did not answer");
  return unauthenticated("the issuer's answer to the authorization code is not valid");
}

/**
 * The last moment an ID token with these claims can pass verifyIdToken: its
 * expiry or its maximum age, whichever comes first, plus the clock
 * tolerance. A used token is remembered until then (single use).
 */
export function idTokenUsableUntil(claims: { iat?: number; exp?: number }): Date {
  const iat = claims.iat ?? 0;
  const last = Math.min(claims.exp ?? iat + MAX_ID_TOKEN_AGE_S, iat + MAX_ID_TOKEN_AGE_S) + CLOCK_TOLERANCE_S;
  return new Date(last * 1000);
}
