import type { OidcIssuer } from "../../server/auth/oidc/issuer.js";

export const STAND_IN_ISSUER = "https://idp.example.test";

/**
 * An OpenID Connect issuer for sign-in use-case tests: every ID token
 * verifies, with the claims `claims` gives (no keys, no network); codes are
 * not used.
 */
export function standInIssuer(claims: () => Record<string, unknown>): OidcIssuer {
  return {
    settings: { issuer: STAND_IN_ISSUER, clientId: "metal", clientSecret: undefined, userClaim: "email", scopes: ["openid"], tokenTtlMs: 3600_000, userQuotas: {} },
    verifyIdToken: async () => claims(),
    authorizationEndpoint: async () => "",
    redeemCode: async () => {
      throw new Error("a stand-in issuer redeems no codes");
    },
  } as unknown as OidcIssuer;
}
