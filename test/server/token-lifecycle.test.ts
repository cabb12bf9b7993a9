import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole, ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { TokenService } from "../../gen/metal/api/v1/token_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
const admin = () => server.client(AdminTokenService, server.adminToken);
const own = (secret: string) => server.client(TokenService, secret);
const millis = (t: { seconds: bigint; nanos: number } | undefined) => Number(t!.seconds) * 1000 + Math.floor(t!.nanos / 1e6);

async function userToken(subject: string, hours = 2) {
  return admin().create({ subject, description: `${subject}'s`, roles: { projectRoles: { p1: ProjectRole.EDITOR } }, expiresIn: { seconds: BigInt(hours * 3600) } });
}

/** Makes a token expired in the database (the JWT's own expiry is checked by verify, not by Refresh). */
async function expire(id: string) {
  await server.app.db.execute(sql`update tokens set expires_at = now() - interval '1 second' where id = ${id}`);
}

beforeAll(async () => {
  server = await startTestServer();
});

describe("TokenService Get and Update", () => {
  it("reads and describes the caller's own tokens, never another's", async () => {
    const alice = await userToken("alice");
    const child = await own(alice.secret).create({ description: "ci", roles: { projectRoles: { p1: ProjectRole.VIEWER } } });
    const got = await own(alice.secret).get({ id: child.token!.id });
    expect(got.token).toMatchObject({ id: child.token!.id, subject: "alice", description: "ci" });
    expect(Object.keys(got).filter((k) => !k.startsWith("$"))).toEqual(["token"]);

    const updated = await own(alice.secret).update({ id: child.token!.id, description: "nightly ci" });
    expect(updated.token?.description).toBe("nightly ci");
    expect(updated.token?.roles?.projectRoles).toEqual({ p1: ProjectRole.VIEWER });
    expect((await own(child.secret).get({ id: child.token!.id })).token?.description).toBe("nightly ci");

    // Another subject's token, the caller's ancestor and a made-up id all read as "not found".
    const bob = await userToken("bob");
    const stranger = "0190a0a0-0000-7000-8000-000000000000";
    for (const id of [bob.token!.id, alice.token!.id, stranger]) {
      const caller = id === alice.token!.id ? child.secret : alice.secret;
      await expectCode(own(caller).get({ id }), Code.NotFound, "not found");
      await expectCode(own(caller).update({ id, description: "mine" }), Code.NotFound, "not found");
      await expectCode(own(caller).refresh({ id }), Code.NotFound, "not found");
    }
    expect((await admin().get({ id: bob.token!.id })).token?.description).toBe("bob's");
  });

  it("validates ids and descriptions", async () => {
    const alice = await userToken("alice-v");
    await expectCode(own(alice.secret).get({ id: "not-a-uuid" }), Code.InvalidArgument, "id");
    await expectCode(own(alice.secret).update({ id: alice.token!.id, description: "x".repeat(257) }), Code.InvalidArgument, "description");
    await expectCode(admin().update({ id: alice.token!.id, description: "x".repeat(257) }), Code.InvalidArgument, "description");
    await expectCode(admin().refresh({ id: "" }), Code.InvalidArgument, "id");
  });

  it("lets operators read and describe any token, and only operators", async () => {
    const carol = await userToken("carol");
    expect((await admin().update({ id: carol.token!.id, description: "set by ops" })).token?.description).toBe("set by ops");
    expect((await admin().get({ id: carol.token!.id })).token?.description).toBe("set by ops");
    await expectCode(admin().get({ id: "0190a0a0-0000-7000-8000-000000000001" }), Code.NotFound);
    await expectCode(admin().update({ id: "0190a0a0-0000-7000-8000-000000000001", description: "" }), Code.NotFound);
    const viewer = (await admin().create({ subject: "viewer", roles: { adminRole: AdminRole.VIEWER } })).secret;
    expect((await server.client(AdminTokenService, viewer).get({ id: carol.token!.id })).token?.id).toBe(carol.token!.id);
    await expectCode(server.client(AdminTokenService, viewer).update({ id: carol.token!.id, description: "no" }), Code.PermissionDenied);
    await expectCode(server.client(AdminTokenService, viewer).refresh({ id: carol.token!.id }), Code.PermissionDenied);
    await expectCode(server.client(AdminTokenService, carol.secret).get({ id: carol.token!.id }), Code.PermissionDenied);
  });
});

describe("TokenService Refresh", () => {
  it("replaces the calling token: same roles and lifetime, old one revoked, derived tokens kept", async () => {
    const dave = await userToken("dave", 2);
    const child = await own(dave.secret).create({ description: "derived", roles: { projectRoles: { p1: ProjectRole.VIEWER } } });
    const r = await own(dave.secret).refresh({});
    expect(r.revoked?.id).toBe(dave.token!.id);
    expect(r.revoked?.revokedAt).toBeDefined();
    expect(r.token).toMatchObject({ subject: "dave", description: "dave's", createdBy: "dave" });
    expect(r.token?.id).not.toBe(dave.token!.id);
    expect(r.token?.roles).toEqual(dave.token!.roles);
    // The same lifetime (the database's creation time and the server's clock differ by the moments between them).
    const lifetime = (t: typeof r.token) => millis(t!.expiresAt) - millis(t!.createdAt);
    expect(Math.abs(lifetime(r.token) - lifetime(dave.token))).toBeLessThan(5_000);
    expect(millis(r.token!.expiresAt)).toBeGreaterThan(millis(dave.token!.expiresAt));

    await expectCode(server.client(UserService, dave.secret).get({}), Code.Unauthenticated, "revoked");
    expect((await server.client(UserService, r.secret).get({})).user?.subject).toBe("dave");
    // What was minted from the old token now hangs under the new one: it works and the new one sees it.
    expect((await server.client(UserService, child.secret).get({})).user?.subject).toBe("dave");
    expect((await own(r.secret).list({})).tokens.map((t) => t.id)).toEqual([r.token!.id, child.token!.id].sort());
    // ...and revoking the new one takes it along.
    await own(r.secret).revoke({ id: r.token!.id });
    await expectCode(server.client(UserService, child.secret).get({}), Code.Unauthenticated, "revoked");
  });

  it("refreshes a derived token by id, never past its parent's expiry", async () => {
    const erin = await userToken("erin", 2);
    const child = await own(erin.secret).create({ description: "short", roles: {}, expiresIn: { seconds: 3600n } });
    const r = await own(erin.secret).refresh({ id: child.token!.id });
    expect(r.revoked?.id).toBe(child.token!.id);
    expect(millis(r.token!.expiresAt)).toBeLessThanOrEqual(millis(erin.token!.expiresAt));
    expect((await own(erin.secret).get({ id: r.token!.id })).token?.description).toBe("short");
    await expectCode(server.client(UserService, child.secret).get({}), Code.Unauthenticated, "revoked");
  });

  it("refuses a revoked or expired token with FailedPrecondition", async () => {
    const frank = await userToken("frank");
    const revoked = await own(frank.secret).create({ description: "gone", roles: {} });
    await own(frank.secret).revoke({ id: revoked.token!.id });
    await expectCode(own(frank.secret).refresh({ id: revoked.token!.id }), Code.FailedPrecondition, "revoked");
    await expectCode(admin().refresh({ id: revoked.token!.id }), Code.FailedPrecondition, "revoked");

    const old = await own(frank.secret).create({ description: "old", roles: {} });
    await expire(old.token!.id);
    await expectCode(own(frank.secret).refresh({ id: old.token!.id }), Code.FailedPrecondition, "expired");
    await expectCode(admin().refresh({ id: old.token!.id }), Code.FailedPrecondition, "expired");
    // A refresh twice of the same token: the second finds it revoked.
    const once = await userToken("frank-twice");
    await admin().refresh({ id: once.token!.id });
    await expectCode(admin().refresh({ id: once.token!.id }), Code.FailedPrecondition, "revoked");
    await expectCode(admin().refresh({ id: "0190a0a0-0000-7000-8000-000000000002" }), Code.NotFound);
  });

  it("lets operators refresh any token; the new one is the subject's, issued by the operator", async () => {
    const gina = await userToken("gina");
    const r = await admin().refresh({ id: gina.token!.id });
    expect(r.token).toMatchObject({ subject: "gina", createdBy: "admin", description: "gina's" });
    expect(r.token?.roles).toEqual(gina.token!.roles);
    expect((await server.client(UserService, r.secret).get({})).user?.subject).toBe("gina");
    await expectCode(server.client(UserService, gina.secret).get({}), Code.Unauthenticated, "revoked");
  });

  it("lets only one of two refreshes of the same token through", async () => {
    const hal = await userToken("hal");
    const results = await Promise.allSettled([admin().refresh({ id: hal.token!.id }), admin().refresh({ id: hal.token!.id })]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const live = (await admin().list({ subject: "hal" })).tokens.filter((t) => !t.revokedAt);
    expect(live).toHaveLength(1);
  });
});
