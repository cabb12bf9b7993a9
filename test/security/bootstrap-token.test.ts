import { chmod, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole } from "../../gen/metal/api/v1/common_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { ensureAdminToken } from "../../server/auth/admin-token.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Issue 12 item 14: the bootstrap admin token is issued once per database; a
 * revoked (or lost) one stays that way until an operator asks for a new one.
 */
let server: TestServer;
let ops: string;

beforeAll(async () => {
  server = await startTestServer();
  // The operator's own admin token, so the bootstrap one can go.
  ops = (await server.client(AdminTokenService, server.adminToken).create({ subject: "ops", roles: { adminRole: AdminRole.ADMIN } })).secret;
});

const ensure = (opts: { reset?: boolean } = {}) => ensureAdminToken(server.app.db, server.app.authority, server.dataDir, opts);
const file = () => join(server.dataDir, "admin-token");
const bootstrapTokens = async () => (await server.client(AdminTokenService, ops).list({ subject: "admin" })).tokens.filter((t) => t.createdBy === "metal-api");

describe("the bootstrap admin token", () => {
  it("is kept as it is on a restart while it works", async () => {
    const again = await ensure();
    expect(again).toMatchObject({ token: server.adminToken, created: false });
    expect(again.problem).toBeUndefined();
    expect(await bootstrapTokens()).toHaveLength(1);
  });

  it("stays revoked after an operator revoked it, also when its file is gone", async () => {
    const [boot] = await bootstrapTokens();
    await server.client(AdminTokenService, ops).revoke({ id: boot!.id });

    const restarted = await ensure();
    expect(restarted.created).toBe(false);
    expect(restarted.token).toBe("");
    expect(restarted.problem).toContain("revoked");
    expect(restarted.problem).toContain("--reset-admin-token");
    expect((await readFile(file(), "utf8")).trim()).toBe(server.adminToken);

    await rm(file());
    const withoutFile = await ensure();
    expect(withoutFile).toMatchObject({ token: "", created: false });
    expect(withoutFile.problem).toContain("--reset-admin-token");

    // Nothing new was issued, and the old one still does not work.
    expect(await bootstrapTokens()).toHaveLength(1);
    await expectCode(server.client(UserService, server.adminToken).get({}), Code.Unauthenticated, "revoked");
  });

  it("is issued again only on an explicit reset, which revokes every earlier one and writes the file with mode 0600", async () => {
    const first = await ensure({ reset: true });
    expect(first.created).toBe(true);
    expect((await server.client(UserService, first.token).get({})).user?.token?.roles?.adminRole).toBe(AdminRole.ADMIN);
    expect((await readFile(file(), "utf8")).trim()).toBe(first.token);

    await chmod(file(), 0o644);
    const second = await ensure({ reset: true });
    expect(second.created).toBe(true);
    expect((await stat(file())).mode & 0o777).toBe(0o600);
    await expectCode(server.client(UserService, first.token).get({}), Code.Unauthenticated, "revoked");
    await server.client(UserService, second.token).get({});
    expect((await bootstrapTokens()).filter((t) => t.revokedAt === undefined)).toHaveLength(1);

    // And a plain restart keeps the new one.
    expect(await ensure()).toMatchObject({ token: second.token, created: false });
  });
});
