import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectMemberRole } from "../../../gen/masterdata/v1/project_member_pb.js";
import { expectCode } from "../../helpers/expect.js";
import { type MasterdataHarness, openMasterdataHarness } from "./harness.js";

let h: MasterdataHarness;
beforeAll(async () => {
  h = await openMasterdataHarness();
});
afterAll(async () => {
  await h?.close();
});

const tenant = (id: string, extra: Record<string, unknown> = {}) => ({ tenant: { meta: { id }, name: `tenant ${id}`, ...extra } });
const project = (id: string, tenantId: string, extra: Record<string, unknown> = {}) => ({ project: { meta: { id }, name: `project ${id}`, tenantId, ...extra } });
const ids = (xs: { meta?: { id: string } }[]) => xs.map((x) => x.meta?.id);

describe("ProjectService", () => {
  it("needs an existing tenant and stores nothing without one", async () => {
    await expectCode(h.projects.create(project("orphan", "no-such-tenant")), Code.NotFound, 'tenant "no-such-tenant" not found');
    await expectCode(h.projects.get({ id: "orphan" }), Code.NotFound);
  });

  it("creates, gets, updates and deletes", async () => {
    await h.tenants.create(tenant("crud-t"));
    const { project: p } = await h.projects.create(project("crud-p", "crud-t", { description: "d", meta: { id: "crud-p", labels: ["x"] } }));
    expect(p?.meta).toMatchObject({ id: "crud-p", kind: "Project", apiversion: "v1", version: 1n, labels: ["x"] });
    expect((await h.projects.get({ id: "crud-p" })).project).toEqual(p);
    const { project: u } = await h.projects.update({
      project: { meta: { id: "crud-p", version: 1n }, name: "renamed", description: "", tenantId: "crud-t", quotas: { ip: { max: 2 } } },
    });
    expect(u).toMatchObject({ name: "renamed", description: "", tenantId: "crud-t" });
    expect(u?.meta?.version).toBe(2n);
    expect(u?.meta?.labels).toEqual([]);
    expect(u?.quotas?.ip?.max).toBe(2);
    await expectCode(h.projects.update({ project: { meta: { id: "crud-p", version: 1n }, name: "stale", tenantId: "crud-t" } }), Code.Aborted, "you sent version 1, current is 2");
    expect((await h.projects.get({ id: "crud-p" })).project?.name).toBe("renamed");
    const { project: d } = await h.projects.delete({ id: "crud-p" });
    expect(d).toEqual((await h.projects.getHistory({ id: "crud-p", at: u!.meta!.updatedTime })).project);
    await expectCode(h.projects.get({ id: "crud-p" }), Code.NotFound);
    await expectCode(h.projects.delete({ id: "crud-p" }), Code.NotFound);
  });

  it("gets a copy of the tenant's default quotas when it brings none", async () => {
    await h.tenants.create(tenant("quota-t", { defaultQuotas: { machine: { max: 5 }, ip: { max: 10 } } }));
    const { project: p } = await h.projects.create(project("with-defaults", "quota-t"));
    expect(p?.quotas?.machine?.max).toBe(5);
    expect(p?.quotas?.ip?.max).toBe(10);
    expect(p?.quotas?.network?.max).toBeUndefined();
    // Its own quotas replace the defaults entirely (ip stays unlimited here).
    const { project: own } = await h.projects.create(project("own-quotas", "quota-t", { quotas: { machine: { max: 1 } } }));
    expect(own?.quotas?.machine?.max).toBe(1);
    expect(own?.quotas?.ip?.max).toBeUndefined();
    // An empty quota set is a choice too: unlimited.
    const { project: unlimited } = await h.projects.create(project("unlimited", "quota-t", { quotas: {} }));
    expect(unlimited?.quotas?.machine?.max).toBeUndefined();
    // A copy: changing the tenant's defaults later leaves existing projects alone.
    const t = (await h.tenants.get({ id: "quota-t" })).tenant!;
    await h.tenants.update({ tenant: { meta: { id: "quota-t", version: t.meta!.version }, name: t.name, defaultQuotas: { machine: { max: 99 } } } });
    expect((await h.projects.get({ id: "with-defaults" })).project?.quotas?.machine?.max).toBe(5);
    expect((await h.projects.create(project("later", "quota-t"))).project?.quotas?.machine?.max).toBe(99);
  });

  it("enforces the tenant's project quota, 0 meaning none at all", async () => {
    await h.tenants.create(tenant("zero-t", { quotas: { project: { max: 0 } } }));
    await expectCode(h.projects.create(project("zero-1", "zero-t")), Code.FailedPrecondition, 'tenant "zero-t" may own at most 0 project(s) and owns 0');
    await h.tenants.create(tenant("two-t", { quotas: { project: { max: 2 } } }));
    await h.projects.create(project("two-1", "two-t"));
    await h.projects.create(project("two-2", "two-t"));
    await expectCode(h.projects.create(project("two-3", "two-t")), Code.FailedPrecondition, "at most 2 project(s) and owns 2");
    await expectCode(h.projects.get({ id: "two-3" }), Code.NotFound);
    // Freed room can be used again.
    await h.projects.delete({ id: "two-1" });
    await h.projects.create(project("two-3", "two-t"));
  });

  it("enforces the tenant's project quota under concurrency: 12 parallel creates, quota 3", async () => {
    await h.tenants.create(tenant("busy", { quotas: { project: { max: 3 } } }));
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => h.projects.create(project(`busy-${i}`, "busy"))));
    const ok = results.filter((r) => r.status === "fulfilled");
    expect(ok).toHaveLength(3);
    for (const r of results) if (r.status === "rejected") expect(Code[ConnectError.from(r.reason).code]).toBe(Code[Code.FailedPrecondition]);
    expect((await h.projects.find({ tenantId: "busy" })).projects).toHaveLength(3);
  });

  it("the quota holds against parallel creates with generated ids too, and across tenants independently", async () => {
    await h.tenants.create(tenant("par-a", { quotas: { project: { max: 2 } } }));
    await h.tenants.create(tenant("par-b", { quotas: { project: { max: 4 } } }));
    const calls = Array.from({ length: 16 }, (_, i) => h.projects.create({ project: { name: `p${i}`, tenantId: i % 2 ? "par-a" : "par-b" } }));
    const results = await Promise.allSettled(calls);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(6);
    expect((await h.projects.find({ tenantId: "par-a" })).projects).toHaveLength(2);
    expect((await h.projects.find({ tenantId: "par-b" })).projects).toHaveLength(4);
  });

  it("cannot move to another tenant", async () => {
    await h.tenants.create(tenant("mover-a"));
    await h.tenants.create(tenant("mover-b"));
    const { project: p } = await h.projects.create(project("moving", "mover-a"));
    await expectCode(
      h.projects.update({ project: { meta: { id: "moving", version: p!.meta!.version }, name: "moved", tenantId: "mover-b" } }),
      Code.InvalidArgument,
      'project.tenant_id: project "moving" belongs to tenant "mover-a" and cannot move to "mover-b"',
    );
    expect((await h.projects.get({ id: "moving" })).project).toEqual(p);
  });

  it("is deleted together with its memberships, other projects' memberships stay", async () => {
    await h.tenants.create(tenant("del-owner"));
    await h.tenants.create(tenant("del-user"));
    await h.projects.create(project("doomed", "del-owner"));
    await h.projects.create(project("kept", "del-owner"));
    const a = await h.projectMembers.create({ projectMember: { projectId: "doomed", tenantId: "del-user", role: ProjectMemberRole.EDITOR } });
    const b = await h.projectMembers.create({ projectMember: { projectId: "doomed", tenantId: "del-owner", role: ProjectMemberRole.OWNER } });
    const c = await h.projectMembers.create({ projectMember: { projectId: "kept", tenantId: "del-user", role: ProjectMemberRole.VIEWER } });
    await h.projects.delete({ id: "doomed" });
    await expectCode(h.projectMembers.get({ id: a.projectMember!.meta!.id }), Code.NotFound);
    await expectCode(h.projectMembers.get({ id: b.projectMember!.meta!.id }), Code.NotFound);
    expect((await h.projectMembers.get({ id: c.projectMember!.meta!.id })).projectMember?.projectId).toBe("kept");
    expect((await h.projectMembers.find({ projectId: "doomed" })).projectMembers).toEqual([]);
  });

  it("finds by id, name, description, tenant, annotations and labels, and pages", async () => {
    await h.tenants.create(tenant("find-t1"));
    await h.tenants.create(tenant("find-t2"));
    await h.projects.create(project("fp-3", "find-t1", { name: "alpha", description: "prod", meta: { id: "fp-3", annotations: { env: "prod" }, labels: ["web"] } }));
    await h.projects.create(project("fp-1", "find-t1", { name: "alpha", description: "dev", meta: { id: "fp-1", annotations: { env: "dev" } } }));
    await h.projects.create(project("fp-2", "find-t2", { name: "beta", description: "prod", meta: { id: "fp-2", annotations: { env: "prod" }, labels: ["web", "db"] } }));
    expect(ids((await h.projects.find({ tenantId: "find-t1" })).projects)).toEqual(["fp-1", "fp-3"]);
    expect(ids((await h.projects.find({ name: "alpha" })).projects)).toEqual(["fp-1", "fp-3"]);
    expect(ids((await h.projects.find({ description: "prod" })).projects)).toEqual(["fp-2", "fp-3"]);
    expect(ids((await h.projects.find({ id: "fp-2" })).projects)).toEqual(["fp-2"]);
    expect(ids((await h.projects.find({ annotations: { env: "prod" }, tenantId: "find-t1" })).projects)).toEqual(["fp-3"]);
    expect(ids((await h.projects.find({ labels: ["db"] })).projects)).toEqual(["fp-2"]);
    expect(ids((await h.projects.find({ labels: ["web"] })).projects)).toEqual(["fp-2", "fp-3"]);
    const first = await h.projects.find({ description: "prod", paging: { limit: 1 } });
    expect(ids(first.projects)).toEqual(["fp-2"]);
    const second = await h.projects.find({ description: "prod", paging: { limit: 1, pageToken: first.nextPageToken } });
    expect(ids(second.projects)).toEqual(["fp-3"]);
    expect(second.nextPageToken).toBe("");
  });
});
