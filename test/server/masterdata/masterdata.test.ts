import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemberRole } from "../../../gen/masterdata/v1/common_pb.js";
import { ProjectMemberService } from "../../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService } from "../../../gen/masterdata/v1/project_pb.js";
import { TenantMemberService } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService } from "../../../gen/masterdata/v1/tenant_pb.js";
import type { Database } from "../../../server/db/database.js";
import { openMasterdataDatabase, type MasterdataSchema } from "../../../server/masterdata/database.js";
import { createMasterdataRoutes } from "../../../server/masterdata/routes.js";
import { expectCode } from "../../helpers/expect.js";
import { createScratchDatabase } from "../../helpers/postgres.js";

let database: Database<MasterdataSchema>;
let drop: () => Promise<void>;
let tenants: ReturnType<typeof createClient<typeof TenantService>>;
let projects: ReturnType<typeof createClient<typeof ProjectService>>;
let tenantMembers: ReturnType<typeof createClient<typeof TenantMemberService>>;
let projectMembers: ReturnType<typeof createClient<typeof ProjectMemberService>>;

beforeAll(async () => {
  const scratch = await createScratchDatabase("md_test");
  drop = scratch.drop;
  database = await openMasterdataDatabase({ url: scratch.url, dataDir: undefined });
  const transport = createRouterTransport(createMasterdataRoutes({ db: database.db }));
  tenants = createClient(TenantService, transport);
  projects = createClient(ProjectService, transport);
  tenantMembers = createClient(TenantMemberService, transport);
  projectMembers = createClient(ProjectMemberService, transport);
});
afterAll(async () => {
  await database.close();
  await drop();
});

const tenant = (id: string, extra: Record<string, unknown> = {}) => ({ tenant: { meta: { id }, name: `tenant ${id}`, ...extra } });
const project = (id: string, tenantId: string, extra: Record<string, unknown> = {}) => ({ project: { meta: { id }, name: `project ${id}`, tenantId, ...extra } });

describe("tenants", () => {
  it("creates with a generated id when none is given, gets and finds", async () => {
    const { tenant: t } = await tenants.create({ tenant: { name: "generated" } });
    expect(t?.meta?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(t?.meta).toMatchObject({ kind: "Tenant", apiversion: "v1", version: 1n });
    await tenants.create(tenant("acme", { meta: { id: "acme", annotations: { "metal.io/tier": "gold" } } }));
    expect((await tenants.get({ id: "acme" })).tenant?.name).toBe("tenant acme");
    expect((await tenants.find({ name: "generated" })).tenants.map((x) => x.meta?.id)).toEqual([t?.meta?.id]);
    expect((await tenants.find({ annotations: { "metal.io/tier": "gold" } })).tenants.map((x) => x.meta?.id)).toEqual(["acme"]);
    await expectCode(tenants.create(tenant("acme")), Code.AlreadyExists, '"acme" already exists');
  });

  it.each([
    ["no tenant", {}, "tenant: is required"],
    ["bad id", tenant("bad id!"), "meta.id"],
    ["no name", { tenant: { meta: { id: "noname" }, name: "" } }, "tenant.name: is required"],
    ["negative quota", tenant("negq", { quotas: { project: { max: -1 } } }), "tenant.quotas.project.max: must not be negative"],
    ["foreign apiversion", tenant("apiv", { meta: { id: "apiv", apiversion: "v9" } }), "meta.apiversion"],
  ])("refuses %s and stores nothing", async (_name, req, message) => {
    await expectCode(tenants.create(req as never), Code.InvalidArgument, message);
    for (const id of ["bad id!", "noname", "negq", "apiv"]) await expectCode(tenants.get({ id: id === "bad id!" ? "bad-id" : id }), Code.NotFound);
  });

  it("updates with optimistic locking", async () => {
    const { tenant: t } = await tenants.create(tenant("lock-t"));
    const updated = await tenants.update({ tenant: { ...t!, description: "new" } });
    expect(updated.tenant?.meta?.version).toBe(2n);
    await expectCode(tenants.update({ tenant: { ...t!, description: "stale" } }), Code.Aborted, "you sent version 1, current is 2");
    expect((await tenants.get({ id: "lock-t" })).tenant?.description).toBe("new");
    await expectCode(tenants.update({ tenant: { ...t!, meta: { ...t!.meta!, version: 0n } } }), Code.InvalidArgument, "meta.version");
  });

  it("answers GetHistory with the state at a past time", async () => {
    const before = new Date(Date.now() - 1000);
    const { tenant: t } = await tenants.create(tenant("hist-t", { description: "v1" }));
    await new Promise((r) => setTimeout(r, 20));
    const between = new Date();
    await new Promise((r) => setTimeout(r, 20));
    await tenants.update({ tenant: { ...t!, description: "v2" } });
    const then = await tenants.getHistory({ id: "hist-t", at: timestampFromDate(between) });
    expect(then.tenant?.description).toBe("v1");
    expect((await tenants.getHistory({ id: "hist-t", at: timestampFromDate(new Date()) })).tenant?.description).toBe("v2");
    await expectCode(tenants.getHistory({ id: "hist-t", at: timestampFromDate(before) }), Code.NotFound);
    await tenants.delete({ id: "hist-t" });
    await expectCode(tenants.getHistory({ id: "hist-t", at: timestampFromDate(new Date()) }), Code.NotFound);
    expect((await tenants.getHistory({ id: "hist-t", at: timestampFromDate(between) })).tenant?.description).toBe("v1");
  });

  it("pages through Find", async () => {
    for (const id of ["pg-1", "pg-2", "pg-3"]) await tenants.create(tenant(id, { name: "paged" }));
    const first = await tenants.find({ name: "paged", paging: { limit: 2 } });
    expect(first.tenants.map((t) => t.meta?.id)).toEqual(["pg-1", "pg-2"]);
    const second = await tenants.find({ name: "paged", paging: { limit: 2, pageToken: first.nextPageToken } });
    expect(second.tenants.map((t) => t.meta?.id)).toEqual(["pg-3"]);
    expect(second.nextPageToken).toBe("");
  });
});

describe("projects", () => {
  it("needs an existing tenant and copies its default quotas", async () => {
    await expectCode(projects.create(project("orphan", "no-such-tenant")), Code.NotFound, 'tenant "no-such-tenant" not found');
    await tenants.create(tenant("quota-t", { defaultQuotas: { machine: { max: 5 }, ip: { max: 10 } } }));
    const { project: p } = await projects.create(project("with-defaults", "quota-t"));
    expect(p?.quotas?.machine?.max).toBe(5);
    expect(p?.quotas?.ip?.max).toBe(10);
    expect(p?.quotas?.network?.max).toBeUndefined();
    const { project: own } = await projects.create(project("own-quotas", "quota-t", { quotas: { machine: { max: 1 } } }));
    expect(own?.quotas?.machine?.max).toBe(1);
    expect(own?.quotas?.ip?.max).toBeUndefined();
  });

  it("enforces the tenant's project quota under concurrency", async () => {
    await tenants.create(tenant("busy", { quotas: { project: { max: 3 } } }));
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => projects.create(project(`busy-${i}`, "busy"))));
    const ok = results.filter((r) => r.status === "fulfilled");
    expect(ok).toHaveLength(3);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.FailedPrecondition);
    expect((await projects.find({ tenantId: "busy" })).projects).toHaveLength(3);
  });

  it("cannot move to another tenant", async () => {
    await tenants.create(tenant("mover-a"));
    await tenants.create(tenant("mover-b"));
    const { project: p } = await projects.create(project("moving", "mover-a"));
    await expectCode(projects.update({ project: { ...p!, tenantId: "mover-b" } }), Code.InvalidArgument, "cannot move");
    expect((await projects.get({ id: "moving" })).project?.tenantId).toBe("mover-a");
  });

  it("deletes with its memberships; a tenant with projects cannot be deleted", async () => {
    await tenants.create(tenant("owner-t"));
    await tenants.create(tenant("user-u"));
    await projects.create(project("doomed", "owner-t"));
    const { projectMember: pm } = await projectMembers.create({ projectMember: { projectId: "doomed", tenantId: "user-u", role: MemberRole.EDITOR } });
    await expectCode(tenants.delete({ id: "owner-t" }), Code.FailedPrecondition, "still owns 1 project");
    await projects.delete({ id: "doomed" });
    await expectCode(projectMembers.get({ id: pm!.meta!.id }), Code.NotFound);
    await tenants.delete({ id: "owner-t" });
    await expectCode(tenants.get({ id: "owner-t" }), Code.NotFound);
  });
});

describe("members", () => {
  it("need both sides, refuse duplicates and a missing role", async () => {
    await tenants.create(tenant("host"));
    await tenants.create(tenant("alice"));
    await expectCode(tenantMembers.create({ tenantMember: { tenantId: "host", memberId: "nobody", role: MemberRole.VIEWER } }), Code.NotFound, '"nobody" not found');
    await expectCode(tenantMembers.create({ tenantMember: { tenantId: "host", memberId: "alice" } }), Code.InvalidArgument, "tenant_member.role: must be set");
    const { tenantMember: m } = await tenantMembers.create({ tenantMember: { tenantId: "host", memberId: "alice", role: MemberRole.OWNER } });
    await expectCode(tenantMembers.create({ tenantMember: { tenantId: "host", memberId: "alice", role: MemberRole.VIEWER } }), Code.AlreadyExists);
    expect((await tenantMembers.find({ memberId: "alice" })).tenantMembers.map((x) => x.meta?.id)).toEqual([m!.meta!.id]);
    await expectCode(projectMembers.create({ projectMember: { projectId: "no-project", tenantId: "alice", role: MemberRole.VIEWER } }), Code.NotFound, "no-project");
  });

  it("disappear when a tenant on either side is deleted", async () => {
    await tenants.create(tenant("host2"));
    await tenants.create(tenant("bob"));
    await tenants.create(tenant("proj-owner"));
    await projects.create(project("bobs-project", "proj-owner"));
    await tenantMembers.create({ tenantMember: { tenantId: "host2", memberId: "bob", role: MemberRole.VIEWER } });
    await projectMembers.create({ projectMember: { projectId: "bobs-project", tenantId: "bob", role: MemberRole.VIEWER } });
    await tenants.delete({ id: "bob" });
    expect((await tenantMembers.find({ tenantId: "host2" })).tenantMembers).toEqual([]);
    expect((await projectMembers.find({ projectId: "bobs-project" })).projectMembers).toEqual([]);
  });

  it("change role with optimistic locking but never their sides", async () => {
    await tenants.create(tenant("host3"));
    await tenants.create(tenant("carol"));
    const { tenantMember: m } = await tenantMembers.create({ tenantMember: { tenantId: "host3", memberId: "carol", role: MemberRole.VIEWER } });
    const up = await tenantMembers.update({ tenantMember: { ...m!, role: MemberRole.EDITOR } });
    expect(up.tenantMember?.role).toBe(MemberRole.EDITOR);
    await expectCode(tenantMembers.update({ tenantMember: { ...m!, role: MemberRole.OWNER } }), Code.Aborted);
    await expectCode(tenantMembers.update({ tenantMember: { ...up.tenantMember!, memberId: "host3" } }), Code.InvalidArgument, "cannot change");
  });
});
