import { beforeAll, describe, expect, it } from "vitest";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

let server: TestServer;
let viewer: string;
const m = cli();
const as = (token: string) => ({ METALCTL_API_URL: server.url, METALCTL_API_TOKEN: token });

beforeAll(async () => {
  server = await startTestServer();
  const admin = server.adminToken;
  await server.client(MdTenantService, admin).create({ tenant: { meta: { id: "t1" }, name: "t1" } });
  await server.client(MdProjectService, admin).create({ project: { meta: { id: "pa" }, name: "a", tenantId: "t1" } });
  await server.client(AdminPartitionService, admin).create({ id: "audited-partition" });
  viewer = (await server.client(AdminTokenService, admin).create({ subject: "vic", roles: { projectRoles: { pa: ProjectRole.VIEWER } } })).secret;
});

describe("metalctl audit", () => {
  it("lists the trail with filters (operators) and describes one entry", async () => {
    const list = await m.run(["audit", "list", "--admin", "--target", "audited-partition", "--since", "1h", "-o", "json"], as(server.adminToken));
    expect(list.stderr).toBe("");
    const entries = JSON.parse(list.stdout) as { id: string; method: string; outcome: string; subject: string }[];
    expect(entries).toEqual([expect.objectContaining({ method: "/metal.admin.v1.PartitionService/Create", outcome: "ok" })]);
    const table = await m.run(["audit", "ls", "--admin", "--method", "PartitionService/Create"], as(server.adminToken));
    expect(table.stdout).toContain("admin.v1.PartitionService/Create");
    expect(table.stdout).toContain("audited-partition");

    const shown = await m.run(["audit", "describe", entries[0]!.id, "-o", "json"], as(server.adminToken));
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: entries[0]!.id, request: { id: "audited-partition" } });

    const none = await m.run(["audit", "list", "--admin", "--outcome", "permission_denied", "--target", "audited-partition", "-o", "json"], as(server.adminToken));
    expect(JSON.parse(none.stdout)).toEqual([]);
  });

  it("shows a project member the project's entries, and needs a project without --admin", async () => {
    const mine = await m.run(["audit", "list", "--project", "pa", "-o", "json"], as(viewer));
    expect(mine.code).toBe(0);
    expect((JSON.parse(mine.stdout) as { project: string }[]).every((e) => e.project === "pa")).toBe(true);
    const noProject = await m.run(["audit", "list"], as(viewer));
    expect(noProject.code).not.toBe(0);
    expect(noProject.stderr).toContain("--project is required");
    const bad = await m.run(["audit", "list", "--admin", "--from", "yesterday"], as(server.adminToken));
    expect(bad.stderr).toContain("is not a time");
  });
});
