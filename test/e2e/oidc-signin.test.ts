import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import * as oidc from "openid-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectMemberService as MdProjectMemberService, ProjectMemberRole } from "../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberService as MdTenantMemberService, TenantMemberRole } from "../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { AuditService as AdminAuditService } from "../../gen/metal/admin/v1/audit_pb.js";
import { TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { SignInService } from "../../gen/metal/api/v1/signin_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { createLogger } from "../../server/logger.js";
import { signInProofRepository } from "../../server/repositories/sign-in-proof-repository.js";
import { cli } from "../cli/run-cli.js";
import { eventually } from "../helpers/eventually.js";
import { openTransaction, RolledBack, someoneWaitsForALock } from "../helpers/interleave.js";
import { startTestIdp, type TestIdp, WEB_CALLBACK_PATH } from "../helpers/oidc-provider.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer, type TestServer } from "../helpers/server-launch.js";
import { scaled } from "../helpers/timeouts.js";

let idp: TestIdp;
let server: TestServer;
let fixture: PartitionFixture;
const alice = cli();
const bob = cli();
const carol = cli();
const operator = cli();
/** Every line the server logs (at trace), and every proof and token the tests handled: none of these may show up in those. */
const logLines: string[] = [];
const secrets: string[] = [];

/** The issuer's device flow polls every 5 s: a login takes that long at least. */
const LOGIN_MS = scaled(60_000);

beforeAll(async () => {
  idp = await startTestIdp();
  const log = createLogger("trace", { destination: { write: (s: string) => void logLines.push(s) } });
  const env = { METAL_DB_POOL_SIZE: "10", MASTERDATA_DB_POOL_SIZE: "4", LOG_LEVEL: "trace", METAL_OIDC_ISSUER: idp.issuer, METAL_OIDC_CLIENT_ID: idp.clientId, METAL_SIGNIN_TOKEN_TTL: "1h" };
  const launched = await launchServer({ env, log, dropInBackground: true });
  afterAll(launched.stop);
  server = launched.server;
  fixture = await setUpPartition(server);
  for (const login of ["alice", "bob", "carol"]) idp.addAccount(login);
});
afterAll(async () => {
  fixture?.stopAll();
  await idp?.close();
});

/** `metalctl login` on a headless host: the person reads the code it prints and completes it at the issuer in their browser. */
async function deviceLogin(m: ReturnType<typeof cli>, login: string) {
  const run = m.start(["login", "--api-url", server.url]);
  let ended = false;
  void run.done.then(() => {
    ended = true;
  });
  const found = await eventually("metalctl to print the device code", () => /open (\S+) and enter the code (\S+)/.exec(run.output().stderr) ?? (ended ? ("ended" as const) : undefined));
  if (found === "ended") throw new Error(`metalctl login ended early: ${run.output().stderr}`);
  const [, uri, code] = found;
  await idp.completeDevice(uri!, code!, login);
  return run.done;
}

describe("metalctl login against a real OpenID Connect provider", () => {
  it("signs in with the device flow, creates the user as a tenant, and stores a token of bounded life", { timeout: LOGIN_MS }, async () => {
    const done = await deviceLogin(alice, "alice");
    expect(done.stderr).toContain("enter the code");
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/^logged in as alice@example\.test \(new user\) until \S+, token stored in context "default"\n$/);
    const who = await alice.run(["whoami", "-o", "json"]);
    const user = JSON.parse(who.stdout) as { subject: string; token: { createdBy: string; expiresAt: string; roles: { tenantRoles: Record<string, string> } } };
    expect(user.subject).toBe("alice@example.test");
    expect(user.token.createdBy).toBe("sign-in");
    expect(user.token.roles.tenantRoles).toEqual({ "alice@example.test": "TENANT_ROLE_OWNER" });
    const lifeMs = Date.parse(user.token.expiresAt) - Date.now();
    expect(lifeMs).toBeGreaterThan(50 * 60_000);
    expect(lifeMs).toBeLessThanOrEqual(3_600_000);
    // Its life ends with the sign-in's: no refresh past it.
    const refresh = await alice.run(["token", "refresh"]);
    expect(refresh.code).toBe(5);
    expect(refresh.stderr).toMatch(/issued at sign-in/);
    // The user is a tenant, tied to the issuer's subject.
    const { tenant } = await server.client(MdTenantService, server.adminToken).get({ id: "alice@example.test" });
    expect(tenant?.meta?.annotations).toMatchObject({ "signin.metal/issuer": idp.issuer });
    // Anyone the issuer knows can sign in: a new user's own tenant may make a few projects and allocate nothing (METAL_SIGNIN_USER_QUOTAS).
    expect(tenant?.quotas).toMatchObject({ project: { max: 3 }, machine: { max: 0 }, ip: { max: 0 }, network: { max: 0 } });
    // ... and its owner as a member, like anyone that tenant self-service counts.
    const own = await server.client(MdTenantMemberService, server.adminToken).find({ memberId: "alice@example.test" });
    expect(own.tenantMembers.map((m) => [m.tenantId, m.role])).toEqual([["alice@example.test", TenantMemberRole.OWNER]]);
  });

  it("a project member allocates a machine in the project; a signed-in non-member is refused", { timeout: 2 * LOGIN_MS }, async () => {
    // An invitation to project pb (made by the operator here; a project owner would do the same), accepted by alice with
    // her signed-in token; her next sign-in carries the role (docs/tenancy.md: grants come with tokens issued after).
    const invited = await operator.run(["project", "invite", "--project", "pb", "--role", "editor"], { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken });
    expect(invited.stderr).toBe("");
    const invitation = /^secret: (\S+)$/m.exec(invited.stdout)?.[1];
    expect(invitation).toBeTruthy();
    secrets.push(invitation!);
    const accepted = await alice.run(["project", "invite-accept", invitation!]);
    expect(accepted.code).toBe(0);
    expect(accepted.stdout + accepted.stderr).toContain("joined project pb as editor");
    const members = await server.client(MdProjectMemberService, server.adminToken).find({ projectId: "pb", tenantId: "alice@example.test" });
    expect(members.projectMembers.map((m) => m.role)).toEqual([ProjectMemberRole.EDITOR]);
    expect((await deviceLogin(alice, "alice")).code).toBe(0);
    const waiting = await fixture.bootMachine("r1");
    const created = await alice.run([
      "machine",
      "create",
      "--project",
      "pb",
      "--partition",
      "p1",
      "--size",
      "s1",
      "--image",
      "debian-12",
      "--hostname",
      "alice1",
      "--networks",
      fixture.primary.pb,
      "--id",
      waiting.id,
    ]);
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect((await waiting.allocation)?.hostname).toBe("alice1");

    expect((await deviceLogin(bob, "bob")).code).toBe(0);
    const other = await fixture.bootMachine("r2");
    const refused = await bob.run([
      "machine",
      "create",
      "--project",
      "pb",
      "--partition",
      "p1",
      "--size",
      "s1",
      "--image",
      "debian-12",
      "--hostname",
      "bob1",
      "--networks",
      fixture.primary.pb,
      "--id",
      other.id,
    ]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/^permission denied: /);
  });

  it("a user disabled at the provider cannot sign in any more", { timeout: LOGIN_MS }, async () => {
    idp.disable("carol");
    const done = await deviceLogin(carol, "carol");
    expect(done.code).toBe(4);
    expect(done.stderr).toMatch(/permission denied: the identity provider refused the sign-in/);
    expect(done.stdout).toBe("");
  });

  it("signs in through the browser: authorization code with PKCE to a loopback listener, redeemed by the control plane", { timeout: LOGIN_MS }, async () => {
    const run = bob.start(["login", "--api-url", server.url, "--browser"], { METALCTL_NO_BROWSER: "1" });
    const url = await eventually("metalctl to print the authorization URL", () => /^(http:\/\/\S+\/auth\?\S+)$/m.exec(run.output().stderr)?.[1]);
    expect(new URL(url).searchParams.get("code_challenge_method")).toBe("S256");
    const redirect = await idp.authorize(url, "bob");
    secrets.push(redirect.searchParams.get("code")!);
    expect(redirect.hostname).toBe("127.0.0.1");
    // The person's browser follows the redirect to metalctl's listener.
    const page = await fetch(redirect);
    expect(page.status).toBe(200);
    const done = await run.done;
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/^logged in as bob@example\.test until /);
    expect((await bob.run(["whoami"])).stdout).toContain("subject: bob@example.test");
  });

  it("logout revokes the token and removes it from the context", async () => {
    const before = await bob.run(["whoami", "-o", "json"]);
    const secretUser = JSON.parse(before.stdout) as { token: { id: string } };
    const out = await bob.run(["logout"]);
    expect(out.code).toBe(0);
    const after = await bob.run(["whoami"]);
    expect(after.code).not.toBe(0);
    const list = await server.client(MdTenantService, server.adminToken).get({ id: "bob@example.test" });
    expect(list.tenant).toBeDefined();
    expect(secretUser.token.id).not.toBe("");
  });
});

describe("SignInService.Exchange", () => {
  const exchange = (idToken: string) => {
    secrets.push(idToken);
    return server.client(SignInService).exchange({ proof: { case: "idToken", value: idToken } });
  };
  const codeOf = (err: unknown) => ConnectError.from(err).code;

  it("tells clients the issuer, client id and scopes", async () => {
    const config = await server.client(SignInService).config({});
    expect(config).toMatchObject({ enabled: true, issuer: idp.issuer, clientId: idp.clientId, userClaim: "email" });
    expect(config.scopes).toContain("openid");
    expect(config.authorizationEndpoint).toBe(`${idp.issuer}/auth`);
  });

  it("redeems an authorization code with its PKCE verifier, once", async () => {
    const config = await oidc.discovery(new URL(idp.issuer), idp.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const redirectUri = `http://127.0.0.1:9${WEB_CALLBACK_PATH}`;
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: redirectUri, scope: "openid email", code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256" });
    const code = (await idp.authorize(url.href, "alice")).searchParams.get("code")!;
    secrets.push(code, verifier);
    expect(code).toBeTruthy();
    const wrongVerifier = oidc.randomPKCECodeVerifier();
    const refused = await server
      .client(SignInService)
      .exchange({ proof: { case: "authorizationCode", value: { code, codeVerifier: wrongVerifier, redirectUri } } })
      .catch((e: unknown) => e);
    expect(codeOf(refused)).toBe(Code.Unauthenticated);
    // A code is good once; the failed try above used it up at this issuer, so a fresh one is fetched.
    const code2 = (await idp.authorize(url.href, "alice")).searchParams.get("code")!;
    secrets.push(code2);
    const ok = await server.client(SignInService).exchange({ proof: { case: "authorizationCode", value: { code: code2, codeVerifier: verifier, redirectUri } } });
    secrets.push(ok.secret);
    expect(ok.user).toBe("alice@example.test");
    expect(ok.token?.roles?.projectRoles).toEqual({ pb: 2 });
    const me = await server.client(UserService, ok.secret).get({});
    expect(me.user?.token?.roles?.tenantRoles).toEqual({ "alice@example.test": TenantRole.OWNER });
    const again = await server
      .client(SignInService)
      .exchange({ proof: { case: "authorizationCode", value: { code: code2, codeVerifier: verifier, redirectUri } } })
      .catch((e: unknown) => e);
    expect(codeOf(again)).toBe(Code.Unauthenticated);
  });

  it("refuses ID tokens of the wrong audience or issuer, expired, stale, tampered or unsigned with Unauthenticated", async () => {
    const sub = "sub-proof-test";
    const base = { iss: idp.issuer, aud: idp.clientId, sub, email: "dave@example.test", email_verified: true };
    // The control: a well-formed one is accepted (and creates dave).
    expect((await exchange(await idp.signIdToken(base))).user).toBe("dave@example.test");
    const now = Math.floor(Date.now() / 1000);
    const bad = {
      "wrong audience": await idp.signIdToken({ ...base, aud: "someone-else" }),
      "wrong issuer": await idp.signIdToken({ ...base, iss: "http://127.0.0.1:1" }),
      expired: await idp.signIdToken(base, { issuedAtS: now - 3600, expiresInS: 600 }),
      "issued too long ago": await idp.signIdToken(base, { issuedAtS: now - 1800, expiresInS: 7200 }),
      "other client as azp": await idp.signIdToken({ ...base, aud: [idp.clientId, "x"], azp: "x" }),
    };
    const good = await idp.signIdToken(base);
    const [h, p, s] = good.split(".");
    const payload = JSON.parse(Buffer.from(p!, "base64url").toString()) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, email: "admin@example.test" })).toString("base64url")}.${s}`;
    const unsigned = `${Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url")}.${p}.`;
    for (const [what, token] of Object.entries({ ...bad, tampered, unsigned })) {
      const err = await exchange(token).catch((e: unknown) => e);
      expect(codeOf(err), what).toBe(Code.Unauthenticated);
      expect(ConnectError.from(err).rawMessage, what).not.toContain(token.slice(0, 40));
    }
    expect(codeOf(await exchange("not a jwt").catch((e: unknown) => e))).toBe(Code.InvalidArgument);
    expect(codeOf(await exchange("a".repeat(20_000)).catch((e: unknown) => e))).toBe(Code.InvalidArgument);
  });

  it("refuses another subject with the same user id, and tenants that sign-in did not create, with PermissionDenied", async () => {
    const takeover = await idp.signIdToken({ iss: idp.issuer, aud: idp.clientId, sub: "someone-else", email: "alice@example.test", email_verified: true });
    const err = await exchange(takeover).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(Code.PermissionDenied);
    // Tenant "t" was made by the operator (the partition fixture).
    const operatorMade = await idp.signIdToken({ iss: idp.issuer, aud: idp.clientId, sub: "sub-t", email: "t", email_verified: true });
    expect(codeOf(await exchange(operatorMade).catch((e: unknown) => e))).toBe(Code.PermissionDenied);
    const unverified = await idp.signIdToken({ iss: idp.issuer, aud: idp.clientId, sub: "sub-u", email: "u@example.test", email_verified: false });
    expect(codeOf(await exchange(unverified).catch((e: unknown) => e))).toBe(Code.PermissionDenied);
  });

  it("records sign-ins of verified identities in the audit trail (the token's id as a target, a takeover as permission_denied), nothing for proofs that do not verify", async () => {
    const audit = server.client(AdminAuditService, server.adminToken);
    const entriesOf = async (subject: string) => (await audit.list({ filter: { subject, method: "/metal.api.v1.SignInService/Exchange" } })).entries;
    const signedIn = await exchange(await idp.signIdToken({ iss: idp.issuer, aud: idp.clientId, sub: "sub-erin", email: "erin@example.test", email_verified: true }));
    secrets.push(signedIn.secret);
    const [entry, ...more] = await entriesOf("erin@example.test");
    expect(more).toEqual([]);
    expect(entry).toMatchObject({ outcome: "ok", tokenId: signedIn.token!.id, targetIds: ["erin@example.test", signedIn.token!.id] });
    expect(JSON.stringify(entry!.request)).not.toContain(signedIn.secret);
    // Alice's id with another subject: refused, and recorded under the id it claimed.
    const takeover = await idp.signIdToken({ iss: idp.issuer, aud: idp.clientId, sub: "someone-else-again", email: "alice@example.test", email_verified: true });
    expect(codeOf(await exchange(takeover).catch((e: unknown) => e))).toBe(Code.PermissionDenied);
    expect((await entriesOf("alice@example.test")).some((e) => e.outcome === "permission_denied")).toBe(true);
    // A proof that does not verify names nobody the server can trust: no entry, whoever it claims to be.
    const forged = await idp.signIdToken({ iss: idp.issuer, aud: "someone-else", sub: "sub-frank", email: "frank@example.test", email_verified: true });
    expect(codeOf(await exchange(forged).catch((e: unknown) => e))).toBe(Code.Unauthenticated);
    expect(await entriesOf("frank@example.test")).toEqual([]);
  });

  it("takes an ID token once: exchanged again it is refused with Unauthenticated and recorded; a fresh one works", async () => {
    const claims = { iss: idp.issuer, aud: idp.clientId, sub: "sub-gina", email: "gina@example.test", email_verified: true };
    const idToken = await idp.signIdToken(claims);
    const first = await exchange(idToken);
    secrets.push(first.secret);
    const again = await exchange(idToken).catch((e: unknown) => e);
    expect(codeOf(again)).toBe(Code.Unauthenticated);
    expect(ConnectError.from(again).rawMessage).toContain("exchanged for a token already");
    // The replay took nothing from the first sign-in's token.
    expect((await server.client(UserService, first.secret).get({})).user?.subject).toBe("gina@example.test");
    const { entries } = await server.client(AdminAuditService, server.adminToken).list({ filter: { subject: "gina@example.test", method: "/metal.api.v1.SignInService/Exchange" } });
    expect(entries.map((e) => e.outcome).sort()).toEqual(["ok", "unauthenticated"]);
    // Another ID token of the same person (a second later, so other bytes) signs in as usual.
    const later = await exchange(await idp.signIdToken(claims, { issuedAtS: Math.floor(Date.now() / 1000) + 1 }));
    secrets.push(later.secret);
    expect(later.user).toBe("gina@example.test");
  });

  it("of two exchanges of one ID token at once, the second waits for the first's use of it: refused once that commits, signed in if it rolls back", async () => {
    const db = server.app.db;
    const claims = { iss: idp.issuer, aud: idp.clientId, sub: "sub-hank", email: "hank@example.test", email_verified: true };
    for (const firstCommits of [true, false]) {
      const idToken = await idp.signIdToken(claims, { issuedAtS: Math.floor(Date.now() / 1000) + (firstCommits ? 0 : 2) });
      const digest = createHash("sha256").update(idToken).digest("hex");
      // The first exchange, stopped right after it marked the token used (the row the server writes, uncommitted).
      const first = openTransaction(db, async (tx) => {
        expect(await signInProofRepository.use(tx, digest, new Date(Date.now() + 600_000))).toBe(true);
      });
      await first.started;
      const second = exchange(idToken).then(
        (r) => (secrets.push(r.secret), r.user),
        (e: unknown) => e,
      );
      await someoneWaitsForALock(db);
      if (firstCommits) {
        first.commit();
        await first.done;
        expect(codeOf(await second)).toBe(Code.Unauthenticated);
      } else {
        first.rollback();
        await expect(first.done).rejects.toBeInstanceOf(RolledBack);
        expect(await second).toBe("hank@example.test");
      }
    }
  });

  it("logs who signed in, never an ID token, code, verifier or metal token", () => {
    const text = logLines.join("");
    expect(text).toMatch(/"user":"alice@example\.test"[^\n]*"signed in"/);
    expect(secrets.length).toBeGreaterThan(10);
    for (const s of secrets) expect(text.includes(s), s.slice(0, 20)).toBe(false);
    // Nor any JWT's signature part of the proofs (a partial echo would be as bad).
    for (const s of secrets.filter((x) => x.split(".").length === 3)) expect(text.includes(s.split(".")[2]!.slice(0, 32) || "-none-")).toBe(false);
  });
});
