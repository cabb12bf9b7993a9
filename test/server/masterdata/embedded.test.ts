import { tmpdir } from "node:os";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectMemberRole, ProjectMemberService } from "../../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService } from "../../../gen/masterdata/v1/project_pb.js";
import { TenantMemberRole, TenantMemberService } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService } from "../../../gen/masterdata/v1/tenant_pb.js";
import { type MasterdataDatabase, openMasterdataDatabase } from "../../../server/masterdata/database.js";
import { createMasterdataRoutes } from "../../../server/masterdata/routes.js";
import { expectCode } from "../../helpers/expect.js";

/**
 * The embedded mode (in-memory PGlite, one connection): same migrations, same
 * queries, row locks inside transactions that use only their own handle.
 */
let database: MasterdataDatabase;
beforeAll(async () => {
  // The migrations are found next to the module, not relative to the working directory.
  const cwd = process.cwd();
  process.chdir(tmpdir());
  try {
    database = await openMasterdataDatabase({ url: undefined, dataDir: undefined });
  } finally {
    process.chdir(cwd);
  }
  expect(database.kind).toBe("pglite");
});
afterAll(async () => {
  await database?.close();
});

describe("masterdata on embedded PGlite", () => {
  it("runs the whole life of tenants, projects and members", async () => {
    const transport = createRouterTransport(createMasterdataRoutes({ db: database.db, projectUsage: async () => [] }));
    const tenants = createClient(TenantService, transport);
    const projects = createClient(ProjectService, transport);
    const tenantMembers = createClient(TenantMemberService, transport);
    const projectMembers = createClient(ProjectMemberService, transport);

    await tenants.create({ tenant: { meta: { id: "t" }, name: "t", quotas: { project: { max: 1 } }, defaultQuotas: { machine: { max: 2 } } } });
    await tenants.create({ tenant: { meta: { id: "u" }, name: "u" } });
    const { project: p } = await projects.create({ project: { meta: { id: "p" }, name: "p", tenantId: "t" } });
    expect(p?.quotas?.machine?.max).toBe(2);
    await expectCode(projects.create({ project: { name: "second", tenantId: "t" } }), Code.FailedPrecondition);
    const { tenantMember: tm } = await tenantMembers.create({ tenantMember: { tenantId: "t", memberId: "u", role: TenantMemberRole.EDITOR } });
    await expectCode(tenantMembers.create({ tenantMember: { tenantId: "t", memberId: "u", role: TenantMemberRole.EDITOR } }), Code.AlreadyExists);
    const { projectMember: pm } = await projectMembers.create({ projectMember: { projectId: "p", tenantId: "u", role: ProjectMemberRole.OWNER } });
    const { project: p2 } = await projects.update({ project: { meta: { id: "p", version: 1n }, name: "renamed", tenantId: "t" } });
    await expectCode(projects.update({ project: { meta: { id: "p", version: 1n }, name: "stale", tenantId: "t" } }), Code.Aborted);
    expect((await projects.getHistory({ id: "p", at: p!.meta!.updatedTime })).project?.name).toBe("p");
    expect((await projects.getHistory({ id: "p", at: p2!.meta!.updatedTime })).project?.name).toBe("renamed");
    await expectCode(tenants.delete({ id: "t" }), Code.FailedPrecondition);
    await projects.delete({ id: "p" });
    await expectCode(projectMembers.get({ id: pm!.meta!.id }), Code.NotFound);
    await tenants.delete({ id: "u" });
    await expectCode(tenantMembers.get({ id: tm!.meta!.id }), Code.NotFound);
    await tenants.delete({ id: "t" });
    expect((await tenants.find({})).tenants).toEqual([]);
  });
});
