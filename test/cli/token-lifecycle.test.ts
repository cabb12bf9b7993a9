import { decodeProtectedHeader } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

let server: TestServer;
const m = cli();
const as = (token: string) => ({ METALCTL_API_URL: server.url, METALCTL_API_TOKEN: token });

beforeAll(async () => {
  server = await startTestServer();
});

const userToken = async (subject: string) => server.client(AdminTokenService, server.adminToken).create({ subject, description: "laptop", roles: { projectRoles: { p1: ProjectRole.VIEWER } } });

describe("metalctl token describe, update, refresh", () => {
  it("describes and re-describes a token, yours or (--admin) anybody's", async () => {
    const u = await userToken("cli-user");
    const id = u.token!.id;
    const shown = await m.run(["token", "describe", id, "-o", "json"], as(u.secret));
    expect(shown.stderr).toBe("");
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, subject: "cli-user", description: "laptop" });
    expect(shown.stdout).not.toContain(u.secret);

    const updated = await m.run(["token", "update", id, "--description", "work laptop", "-o", "json"], as(u.secret));
    expect(JSON.parse(updated.stdout).description).toBe("work laptop");
    const byOps = await m.run(["token", "update", id, "--admin", "--description", "seen by ops", "-o", "json"], as(server.adminToken));
    expect(JSON.parse(byOps.stdout).description).toBe("seen by ops");

    // Another subject's token is "not found" to a tenant.
    const other = await m.run(["token", "describe", (await userToken("someone-else")).token!.id], as(u.secret));
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain("not found");
  });

  it("refreshes the calling token and stores the new secret in the context it came from", async () => {
    const u = await userToken("cli-refresh");
    const login = await m.run(["login", "--api-url", server.url, "--token", u.secret]);
    expect(login.code).toBe(0);
    const r = await m.run(["token", "refresh", "-o", "json"]);
    expect(r.stderr).toContain("stored in context");
    const fresh = JSON.parse(r.stdout) as { token: { id: string; subject: string }; secret: string };
    expect(fresh.token.subject).toBe("cli-refresh");
    expect(fresh.token.id).not.toBe(u.token!.id);
    // The next call goes with the new token: the old one is revoked.
    const who = await m.run(["whoami", "-o", "json"]);
    expect(who.code).toBe(0);
    expect(JSON.parse(who.stdout).token.id).toBe(fresh.token.id);
    const old = await m.run(["whoami"], as(u.secret));
    expect(old.stderr).toContain("revoked");
  });

  it("refreshes anybody's token with --admin, which needs an id", async () => {
    const u = await userToken("cli-admin-refresh");
    const r = await m.run(["token", "refresh", u.token!.id, "--admin"], as(server.adminToken));
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split(".")).toHaveLength(3);
    const noId = await m.run(["token", "refresh", "--admin"], as(server.adminToken));
    expect(noId.code).not.toBe(0);
    expect(noId.stderr).toContain("needs the id");
  });

  it("rotates the signing key: tokens issued next name the new key", async () => {
    const r = await m.run(["token", "rotate-signing-key", "-o", "json"], as(server.adminToken));
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as { key: { id: string }; kept: { id: string }[]; retiredIds: string[] };
    expect(out.kept.length).toBeGreaterThan(0);
    const next = await userToken("after-rotation");
    expect(decodeProtectedHeader(next.secret).kid).toBe(out.key.id);
    const human = await m.run(["token", "rotate-signing-key"], as(server.adminToken));
    expect(human.stdout).toMatch(/^signing key \S+ signs from now on/);
    const denied = await m.run(["token", "rotate-signing-key"], as(next.secret));
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain("permission");
  });
});
