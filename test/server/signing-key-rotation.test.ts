import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { decodeProtectedHeader } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole } from "../../gen/metal/api/v1/common_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { expectCode } from "../helpers/expect.js";
import { type SharedDbReplicas, startSharedDbReplicas } from "../helpers/shared-db-replicas.js";

let cluster: SharedDbReplicas;
const kidOf = (secret: string) => decodeProtectedHeader(secret).kid;
const [A, B] = [0, 1] as const;
const admin = (replica: number, token = cluster.adminToken) => cluster.replicas[replica]!.client(AdminTokenService, token);
const whoAmI = async (replica: number, token: string) => (await cluster.replicas[replica]!.client(UserService, token).get({})).user?.subject;
const operator = async (replica: number, subject: string, caller?: string) => (await admin(replica, caller).create({ subject, roles: { adminRole: AdminRole.ADMIN } })).secret;

beforeAll(async () => {
  cluster = await startSharedDbReplicas(["rot-a", "rot-b"]);
});

describe("signing-key rotation across two replicas on one database", () => {
  it("signs new tokens with the new key on every replica and keeps verifying the old ones", async () => {
    const before = await operator(A, "before");
    const firstKid = kidOf(before);

    const rotated = await admin(A).rotateSigningKey({});
    expect(rotated.key?.id).not.toBe(firstKid);
    expect(rotated.kept.map((k) => k.id)).toContain(firstKid);
    expect(rotated.retiredIds).toEqual([]);

    // Replica A made the key; replica B signs with it from its next issue on, without a restart.
    const onB = await operator(B, "after-on-b");
    expect(kidOf(onB)).toBe(rotated.key?.id);
    const onA = await operator(A, "after-on-a");
    expect(kidOf(onA)).toBe(rotated.key?.id);
    // B never loaded the new key before this call: it reads it when a token names it.
    expect(await whoAmI(B, onA)).toBe("after-on-a");
    expect(await whoAmI(A, onB)).toBe("after-on-b");
    // Tokens of the older key still verify everywhere.
    for (const r of [A, B]) {
      expect(await whoAmI(r, before)).toBe("before");
      expect(await whoAmI(r, cluster.adminToken)).toBe("admin");
    }

    // A second rotation on B: A signs with that one next.
    const again = await admin(B).rotateSigningKey({});
    expect(kidOf(await operator(A, "third"))).toBe(again.key?.id);
    expect(again.kept.map((k) => k.id)).toEqual([rotated.key?.id, firstKid]);
  });

  it("refuses a token naming a key that does not exist", async () => {
    const good = await operator(A, "forger");
    const [, payload, signature] = good.split(".");
    const header = Buffer.from(JSON.stringify({ alg: "EdDSA", kid: "no-such-key" })).toString("base64url");
    for (const r of [A, B]) await expectCode(cluster.replicas[r]!.client(UserService, `${header}.${payload}.${signature}`).get({}), Code.Unauthenticated, "not valid");
  });

  it("is for operator admins only", async () => {
    const viewer = (await admin(A, await operator(A, "ops-2")).create({ subject: "viewer", roles: { adminRole: AdminRole.VIEWER } })).secret;
    await expectCode(admin(A, viewer).rotateSigningKey({}), Code.PermissionDenied);
    await expectCode(cluster.replicas[B]!.client(AdminTokenService).rotateSigningKey({}), Code.Unauthenticated);
  });

  it("retires a key once no unexpired token can carry it, and never the newest", async () => {
    const keysNow = async () => (await cluster.db.execute(sql`select id from signing_keys order by created_at`)) as unknown as { rows: { id: string }[] };
    const [oldest] = (await keysNow()).rows.map((r) => r.id);
    // Everything so far happened more than a day ago (keys and tokens alike, so which key signed what stays as it was).
    await cluster.db.execute(sql`update signing_keys set created_at = created_at - interval '30 hours'`);
    await cluster.db.execute(sql`update tokens set created_at = created_at - interval '30 hours'`);

    // Live tokens from the oldest key's time hold it (the admin token, "before").
    const kept = await admin(A).rotateSigningKey({});
    expect(kept.retiredIds).toEqual([]);

    // A caller issued now carries the newest key; once every older token has expired the oldest key goes.
    const fresh = await operator(A, "fresh");
    await cluster.db.execute(sql`update tokens set expires_at = now() - interval '1 second' where subject <> 'fresh'`);
    const retired = await admin(B, fresh).rotateSigningKey({});
    expect(retired.retiredIds).toContain(oldest);
    expect(retired.key?.id).not.toBe(oldest);
    expect((await keysNow()).rows.map((r) => r.id)).not.toContain(oldest);
    // The newest keys stay, and the caller's token keeps working on both replicas.
    expect(retired.kept.map((k) => k.id)).toContain(kidOf(fresh));
    for (const r of [A, B]) expect(await whoAmI(r, fresh)).toBe("fresh");
  });
});
