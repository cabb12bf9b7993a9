import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { createOidcIssuer } from "../../server/auth/oidc/issuer.js";
import { ConfigError, loadConfig } from "../../server/config.js";
import { ownershipRefusal, signInRoles, userIdFromClaims, userQuotaSet } from "../../server/domain/signin.js";
import { createSignIn } from "../../server/usecases/signin/sign-in.js";

describe("sign-in rules", () => {
  it("names the user by the configured claim, lower-cased and checked like a masterdata id", () => {
    expect(userIdFromClaims({ email: "Alice@Example.TEST", email_verified: true }, "email")).toEqual({ ok: true, id: "alice@example.test" });
    expect(userIdFromClaims({ email: "a@example.test", email_verified: false }, "email")).toMatchObject({ ok: false });
    expect(userIdFromClaims({ preferred_username: "bob" }, "preferred_username")).toEqual({ ok: true, id: "bob" });
    for (const bad of ["a+b@example.test", "", "-x", "x".repeat(129), "a b"]) expect(userIdFromClaims({ email: bad }, "email"), bad).toMatchObject({ ok: false });
    expect(userIdFromClaims({ sub: 42 }, "sub")).toMatchObject({ ok: false });
  });

  it("ties a user to one issuer and subject", () => {
    const a = { "signin.metal/issuer": "https://idp", "signin.metal/subject": "s1" };
    expect(ownershipRefusal(a, "https://idp", "s1")).toBeUndefined();
    expect(ownershipRefusal(a, "https://idp", "s2")).toMatch(/another identity/);
    expect(ownershipRefusal(a, "https://other", "s1")).toMatch(/another identity/);
    expect(ownershipRefusal({}, "https://idp", "s1")).toMatch(/not created by sign-in/);
  });

  it("grants owner of the own tenant plus the memberships' roles, the higher one where two meet, nothing operator-wide", () => {
    const roles = signInRoles(
      "u",
      [
        { id: "acme", role: 2 },
        { id: "acme", role: 1 },
        { id: "bad", role: 9 },
      ],
      [
        { id: "p1", role: 3 },
        { id: "p2", role: 1 },
      ],
    );
    expect(roles).toEqual({ adminRole: 0, infraPartition: "", tenantRoles: { u: TenantRole.OWNER, acme: TenantRole.EDITOR }, projectRoles: { p1: ProjectRole.OWNER, p2: ProjectRole.VIEWER } });
  });

  it("is off without an issuer: Exchange answers FailedPrecondition", async () => {
    const signIn = createSignIn({ issuer: undefined, authority: {} as never, db: {} as never, masterdata: {} as never, log: {} as never });
    expect(signIn.settings()).toBeUndefined();
    const err = await signIn.exchange({ idToken: "a.b.c" }, "", "r1").catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.FailedPrecondition);
  });

  it("reads the settings all or nothing, with a bounded token life", () => {
    expect(loadConfig({}).oidc).toBeUndefined();
    const c = loadConfig({ METAL_OIDC_ISSUER: "https://idp.example", METAL_OIDC_CLIENT_ID: "metal", METAL_OIDC_SCOPES: "email profile" }).oidc;
    expect(c).toMatchObject({ issuer: "https://idp.example", clientId: "metal", userClaim: "email", scopes: ["openid", "email", "profile"], tokenTtlMs: 8 * 3_600_000 });
    expect(() => loadConfig({ METAL_OIDC_CLIENT_ID: "metal" })).toThrow(ConfigError);
    expect(() => loadConfig({ METAL_OIDC_ISSUER: "https://idp.example" })).toThrow(/METAL_OIDC_CLIENT_ID/);
    expect(() => loadConfig({ METAL_OIDC_ISSUER: "http://idp.example", METAL_OIDC_CLIENT_ID: "m" })).toThrow(/https/);
    expect(() => loadConfig({ METAL_OIDC_ISSUER: "https://idp.example", METAL_OIDC_CLIENT_ID: "m", METAL_SIGNIN_TOKEN_TTL: "48h" })).toThrow(/between 5m and 24h/);
    expect(loadConfig({ METAL_OIDC_ISSUER: "http://127.0.0.1:9000", METAL_OIDC_CLIENT_ID: "m" }, ["--signin-token-ttl", "1h"]).oidc?.tokenTtlMs).toBe(3_600_000);
  });

  it("gives a new user's tenant bounded quotas: a few projects, nothing to allocate of their own, unless the operator says otherwise", () => {
    const base = { METAL_OIDC_ISSUER: "https://idp.example", METAL_OIDC_CLIENT_ID: "metal" };
    expect(loadConfig(base).oidc?.userQuotas).toEqual({ project: 3, machine: 0, ip: 0, network: 0 });
    expect(loadConfig({ ...base, METAL_SIGNIN_USER_QUOTAS: "project=10, machine=2, ip=unlimited" }).oidc?.userQuotas).toEqual({ project: 10, machine: 2 });
    expect(loadConfig({ ...base, METAL_SIGNIN_USER_QUOTAS: "project=unlimited" }).oidc?.userQuotas).toEqual({});
    for (const bad of ["cpu=1", "machine=-1", "machine=2,machine=3", "machine"]) expect(() => loadConfig({ ...base, METAL_SIGNIN_USER_QUOTAS: bad }), bad).toThrow(ConfigError);
    expect(userQuotaSet({ project: 3, machine: 0 })).toEqual({ machine: { max: 0 }, ip: undefined, network: undefined, project: { max: 3 } });
  });

  it("answers Unavailable while the issuer cannot be reached, and an empty authorization endpoint", async () => {
    const issuer = createOidcIssuer({ issuer: "http://127.0.0.1:1", clientId: "m", clientSecret: undefined, userClaim: "email", scopes: ["openid"], tokenTtlMs: 3_600_000, userQuotas: {} });
    for (let i = 0; i < 2; i++) {
      const err = await issuer.verifyIdToken("a.b.c").catch((e: unknown) => e);
      expect(ConnectError.from(err).code).toBe(Code.Unavailable);
    }
    const signIn = createSignIn({ issuer, authority: {} as never, db: {} as never, masterdata: {} as never, log: {} as never });
    expect(await signIn.authorizationEndpoint()).toBe("");
  });
});
