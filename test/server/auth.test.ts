import { stat } from "node:fs/promises";
import { join } from "node:path";
import { type Client, Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole, ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { HealthService, HealthStatus } from "../../gen/metal/api/v1/health_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { TokenService } from "../../gen/metal/api/v1/token_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { VersionService } from "../../gen/metal/api/v1/version_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let tokensAdmin: Client<typeof AdminTokenService>;

beforeAll(async () => {
  server = await startTestServer();
  tokensAdmin = server.client(AdminTokenService, server.adminToken);
});

async function tokenFor(subject: string, roles: Parameters<typeof tokensAdmin.create>[0]["roles"]) {
  const r = await tokensAdmin.create({ subject, description: `test token for ${subject}`, roles });
  return r.secret;
}

describe("authentication", () => {
  it("writes the admin token with mode 0600", async () => {
    const s = await stat(join(server.dataDir, "admin-token"));
    expect(s.mode & 0o777).toBe(0o600);
  });

  it("answers Unauthenticated without a token, with a garbage token and with a malformed header", async () => {
    await expectCode(server.client(AdminPartitionService).list({}), Code.Unauthenticated, "needs a token");
    await expectCode(server.client(AdminPartitionService, "garbage").list({}), Code.Unauthenticated, "not valid");
    await expectCode(server.client(PartitionService).list({}), Code.Unauthenticated);
  });

  it("serves public methods without a token", async () => {
    const v = await server.client(VersionService).get({});
    expect(v.version?.version).toMatch(/^\d+\.\d+\.\d+/);
    const h = await server.client(HealthService).get({});
    expect(h.status).toBe(HealthStatus.HEALTHY);
    expect(h.services.map((s) => s.name).sort()).toEqual(["database", "masterdata"]);
    const g = await server.grpcClient(Health).check({ service: "" });
    expect(g.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const known = await server.grpcClient(Health).check({ service: "metal.admin.v1.PartitionService" });
    expect(known.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    await expectCode(server.grpcClient(Health).check({ service: "no.such.Service" }), Code.NotFound);
  });

  it("serves Prometheus metrics that count RPCs", async () => {
    await server.client(VersionService).get({});
    const body = await (await fetch(`${server.url}/metrics`)).text();
    expect(body).toMatch(/metal_rpc_handled_total\{service="metal.api.v1.VersionService",method="Get",code="Ok"\} \d+/);
  });
});

describe("authorization", () => {
  it("lets an operator viewer read but not write", async () => {
    const viewer = await tokenFor("olga", { adminRole: AdminRole.VIEWER });
    const c = server.client(AdminPartitionService, viewer);
    await c.list({});
    await expectCode(c.create({ id: "viewer-made" }), Code.PermissionDenied, "needs operator admin");
    const all = await server.client(AdminPartitionService, server.adminToken).list({ paging: { limit: 1000 } });
    expect(all.partitions.map((p) => p.id)).not.toContain("viewer-made");
  });

  it("keeps project members out of operator methods but lets them read partitions", async () => {
    const editor = await tokenFor("erin", { projectRoles: { p1: ProjectRole.EDITOR } });
    await expectCode(server.client(AdminPartitionService, editor).create({ id: "editor-made" }), Code.PermissionDenied);
    await expectCode(server.client(AdminTokenService, editor).list({}), Code.PermissionDenied);
    await server.client(PartitionService, editor).list({});
  });

  it("tells the caller who they are", async () => {
    const t = await tokenFor("walter", { projectRoles: { p1: ProjectRole.VIEWER }, tenantRoles: { t1: TenantRole.OWNER } });
    const me = await server.client(UserService, t).get({});
    expect(me.user?.subject).toBe("walter");
    expect(me.user?.token?.roles?.projectRoles).toEqual({ p1: ProjectRole.VIEWER });
    expect(me.user?.token?.roles?.tenantRoles).toEqual({ t1: TenantRole.OWNER });
  });
});

describe("tokens", () => {
  it("can only grant what the creating token holds", async () => {
    const editor = await tokenFor("ed", { projectRoles: { p1: ProjectRole.EDITOR } });
    const tokens = server.client(TokenService, editor);
    const narrower = await tokens.create({ description: "ci", roles: { projectRoles: { p1: ProjectRole.VIEWER } } });
    expect(narrower.token?.subject).toBe("ed");
    expect(narrower.token?.createdBy).toBe("ed");
    await expectCode(tokens.create({ roles: { projectRoles: { p2: ProjectRole.VIEWER } } }), Code.PermissionDenied, 'roles.project_roles["p2"]');
    await expectCode(tokens.create({ roles: { projectRoles: { p1: ProjectRole.OWNER } } }), Code.PermissionDenied, "owner exceeds your editor");
    await expectCode(tokens.create({ roles: { adminRole: AdminRole.ADMIN } }), Code.PermissionDenied, "roles.admin_role");
    await expectCode(tokens.create({ roles: { infraPartition: "fra" } }), Code.PermissionDenied, "roles.infra_partition");
  });

  it("never lets a derived token outlive its creator", async () => {
    const short = (await tokensAdmin.create({ subject: "sam", roles: {}, expiresIn: { seconds: 600n } })).secret;
    const derived = await server.client(TokenService, short).create({ roles: {}, expiresIn: { seconds: 86_400n } });
    const exp = Number(derived.token!.expiresAt!.seconds) * 1000;
    expect(exp).toBeLessThanOrEqual(Date.now() + 600_000);
  });

  it("validates token requests", async () => {
    await expectCode(tokensAdmin.create({ subject: "", roles: {} }), Code.InvalidArgument, "subject: is required");
    await expectCode(tokensAdmin.create({ subject: "x", roles: { projectRoles: { "Bad Project": ProjectRole.VIEWER } } }), Code.InvalidArgument, "roles.project_roles");
    await expectCode(tokensAdmin.create({ subject: "x", roles: { projectRoles: { p1: 0 as ProjectRole } } }), Code.InvalidArgument, "must be set");
    await expectCode(tokensAdmin.create({ subject: "x", roles: { adminRole: 7 as AdminRole } }), Code.InvalidArgument, "not a known value");
    await expectCode(tokensAdmin.create({ subject: "x", roles: {}, expiresIn: { seconds: 5n } }), Code.InvalidArgument, "expires_in: must be at least 1 minute");
    await expectCode(tokensAdmin.create({ subject: "x", roles: {}, expiresIn: { seconds: 400n * 86_400n } }), Code.InvalidArgument, "at most 1 year");
    await expectCode(tokensAdmin.revoke({ id: "not-a-uuid" }), Code.InvalidArgument, "id:");
    const listed = await tokensAdmin.list({ subject: "x" });
    expect(listed.tokens).toEqual([]);
  });

  it("lists only the caller's own tokens and revokes them for good", async () => {
    const mine = await tokenFor("rita", { projectRoles: { p1: ProjectRole.VIEWER } });
    await tokenFor("other", {});
    const tokens = server.client(TokenService, mine);
    const extra = await tokens.create({ description: "second", roles: {} });
    const listed = await tokens.list({});
    expect(new Set(listed.tokens.map((t) => t.subject))).toEqual(new Set(["rita"]));
    expect(listed.tokens).toHaveLength(2);

    // Someone else's token cannot be revoked through the tenant API.
    const otherId = (await tokensAdmin.list({ subject: "other" })).tokens[0]!.id;
    await expectCode(tokens.revoke({ id: otherId }), Code.NotFound);

    await tokens.revoke({ id: extra.token!.id });
    await expectCode(server.client(UserService, extra.secret).get({}), Code.Unauthenticated, "revoked");
    // The creator's own token still works.
    await server.client(UserService, mine).get({});
    const revoked = (await tokensAdmin.list({ subject: "rita" })).tokens.find((t) => t.id === extra.token!.id);
    expect(revoked?.revokedAt).toBeDefined();
  });
});
