import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectMemberRole } from "../../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberRole } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { expectCode } from "../../helpers/expect.js";
import { type MasterdataHarness, openMasterdataHarness } from "./harness.js";

let h: MasterdataHarness;
beforeAll(async () => {
  h = await openMasterdataHarness();
  for (const id of ["host", "alice", "bob", "carol", "dave"]) await h.tenants.create({ tenant: { meta: { id }, name: id } });
  await h.projects.create({ project: { meta: { id: "web" }, name: "web", tenantId: "host" } });
  await h.projects.create({ project: { meta: { id: "db" }, name: "db", tenantId: "host" } });
});
afterAll(async () => {
  await h?.close();
});

const ids = (xs: { meta?: { id: string } }[]) => xs.map((x) => x.meta?.id);

describe("TenantMemberService", () => {
  it("creates, gets, finds, updates the role and deletes", async () => {
    const { tenantMember: m } = await h.tenantMembers.create({
      tenantMember: { meta: { annotations: { source: "test" } }, tenantId: "host", memberId: "alice", role: TenantMemberRole.OWNER },
    });
    expect(m?.meta).toMatchObject({ kind: "TenantMember", version: 1n, annotations: { source: "test" } });
    expect(m?.meta?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await h.tenantMembers.get({ id: m!.meta!.id })).tenantMember).toEqual(m);
    const { tenantMember: up } = await h.tenantMembers.update({
      tenantMember: { meta: { id: m!.meta!.id, version: 1n }, tenantId: "host", memberId: "alice", role: TenantMemberRole.VIEWER },
    });
    expect(up?.role).toBe(TenantMemberRole.VIEWER);
    expect(up?.meta?.version).toBe(2n);
    expect(up?.meta?.annotations).toEqual({});
    await expectCode(h.tenantMembers.update({ tenantMember: { meta: { id: m!.meta!.id, version: 1n }, tenantId: "host", memberId: "alice", role: TenantMemberRole.EDITOR } }), Code.Aborted);
    expect((await h.tenantMembers.get({ id: m!.meta!.id })).tenantMember?.role).toBe(TenantMemberRole.VIEWER);
    await h.tenantMembers.delete({ id: m!.meta!.id });
    await expectCode(h.tenantMembers.get({ id: m!.meta!.id }), Code.NotFound);
    await expectCode(h.tenantMembers.delete({ id: m!.meta!.id }), Code.NotFound);
  });

  it("needs both tenants to exist", async () => {
    await expectCode(h.tenantMembers.create({ tenantMember: { tenantId: "host", memberId: "nobody", role: TenantMemberRole.VIEWER } }), Code.NotFound, 'tenant "nobody" not found');
    await expectCode(h.tenantMembers.create({ tenantMember: { tenantId: "nowhere", memberId: "alice", role: TenantMemberRole.VIEWER } }), Code.NotFound, 'tenant "nowhere" not found');
    expect((await h.tenantMembers.find({ memberId: "nobody" })).tenantMembers).toEqual([]);
    expect((await h.tenantMembers.find({ tenantId: "nowhere" })).tenantMembers).toEqual([]);
  });

  it("refuses a second membership of the same pair, whatever its id, also when both race", async () => {
    const { tenantMember: first } = await h.tenantMembers.create({ tenantMember: { tenantId: "host", memberId: "bob", role: TenantMemberRole.EDITOR } });
    await expectCode(
      h.tenantMembers.create({ tenantMember: { meta: { id: "other-id" }, tenantId: "host", memberId: "bob", role: TenantMemberRole.OWNER } }),
      Code.AlreadyExists,
      '"bob" is already a member of tenant "host"',
    );
    await expectCode(
      h.tenantMembers.create({ tenantMember: { meta: { id: first!.meta!.id }, tenantId: "host", memberId: "carol", role: TenantMemberRole.OWNER } }),
      Code.AlreadyExists,
      `tenant member "${first!.meta!.id}" already exists`,
    );
    expect(ids((await h.tenantMembers.find({ tenantId: "host", memberId: "bob" })).tenantMembers)).toEqual([first!.meta!.id]);
    expect((await h.tenantMembers.find({ tenantId: "host", memberId: "carol" })).tenantMembers).toEqual([]);

    const racing = await Promise.allSettled(Array.from({ length: 8 }, () => h.tenantMembers.create({ tenantMember: { tenantId: "dave", memberId: "carol", role: TenantMemberRole.VIEWER } })));
    expect(racing.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of racing) if (r.status === "rejected") expect(Code[ConnectError.from(r.reason).code]).toBe(Code[Code.AlreadyExists]);
  });

  it("crossed memberships created in parallel do not deadlock", async () => {
    for (const id of ["x1", "x2", "x3", "x4"]) await h.tenants.create({ tenant: { meta: { id }, name: id } });
    const pairs = [
      ["x1", "x2"],
      ["x2", "x1"],
      ["x3", "x4"],
      ["x4", "x3"],
      ["x1", "x3"],
      ["x3", "x1"],
      ["x2", "x4"],
      ["x4", "x2"],
    ];
    const results = await Promise.allSettled(pairs.map(([t, m]) => h.tenantMembers.create({ tenantMember: { tenantId: t!, memberId: m!, role: TenantMemberRole.VIEWER } })));
    expect(results.map((r) => (r.status === "rejected" ? ConnectError.from(r.reason).message : "ok"))).toEqual(pairs.map(() => "ok"));
  });

  it("lets a tenant be a member of itself (a user's own tenant)", async () => {
    const { tenantMember: m } = await h.tenantMembers.create({ tenantMember: { tenantId: "carol", memberId: "carol", role: TenantMemberRole.OWNER } });
    expect(m).toMatchObject({ tenantId: "carol", memberId: "carol" });
  });

  it("never changes its sides on update", async () => {
    const { tenantMember: m } = await h.tenantMembers.create({ tenantMember: { tenantId: "alice", memberId: "dave", role: TenantMemberRole.VIEWER } });
    const meta = { id: m!.meta!.id, version: 1n };
    await expectCode(h.tenantMembers.update({ tenantMember: { meta, tenantId: "alice", memberId: "bob", role: TenantMemberRole.VIEWER } }), Code.InvalidArgument, "cannot change");
    await expectCode(h.tenantMembers.update({ tenantMember: { meta, tenantId: "bob", memberId: "dave", role: TenantMemberRole.VIEWER } }), Code.InvalidArgument, "cannot change");
    expect((await h.tenantMembers.get({ id: m!.meta!.id })).tenantMember).toEqual(m);
  });

  it("finds by host, by member, by annotations and labels, and pages", async () => {
    for (const id of ["f-host", "f-1", "f-2", "f-3"]) await h.tenants.create({ tenant: { meta: { id }, name: id } });
    for (const [i, member] of ["f-1", "f-2", "f-3"].entries()) {
      await h.tenantMembers.create({
        tenantMember: { meta: { id: `fm-${i}`, annotations: { n: String(i % 2) }, labels: i === 2 ? ["special"] : [] }, tenantId: "f-host", memberId: member, role: TenantMemberRole.VIEWER },
      });
    }
    await h.tenantMembers.create({ tenantMember: { meta: { id: "fm-x" }, tenantId: "f-1", memberId: "f-2", role: TenantMemberRole.VIEWER } });
    expect(ids((await h.tenantMembers.find({ tenantId: "f-host" })).tenantMembers)).toEqual(["fm-0", "fm-1", "fm-2"]);
    expect(ids((await h.tenantMembers.find({ memberId: "f-2" })).tenantMembers)).toEqual(["fm-1", "fm-x"]);
    expect(ids((await h.tenantMembers.find({ tenantId: "f-host", annotations: { n: "0" } })).tenantMembers)).toEqual(["fm-0", "fm-2"]);
    expect(ids((await h.tenantMembers.find({ labels: ["special"] })).tenantMembers)).toEqual(["fm-2"]);
    const first = await h.tenantMembers.find({ tenantId: "f-host", paging: { limit: 2 } });
    expect(ids(first.tenantMembers)).toEqual(["fm-0", "fm-1"]);
    const second = await h.tenantMembers.find({ tenantId: "f-host", paging: { limit: 2, pageToken: first.nextPageToken } });
    expect(ids(second.tenantMembers)).toEqual(["fm-2"]);
    expect(second.nextPageToken).toBe("");
  });
});

describe("ProjectMemberService", () => {
  it("creates, gets, updates the role and deletes", async () => {
    const { projectMember: m } = await h.projectMembers.create({ projectMember: { meta: { id: "pm-alice-web" }, projectId: "web", tenantId: "alice", role: ProjectMemberRole.EDITOR } });
    expect(m?.meta).toMatchObject({ id: "pm-alice-web", kind: "ProjectMember", version: 1n });
    expect((await h.projectMembers.get({ id: "pm-alice-web" })).projectMember).toEqual(m);
    const { projectMember: up } = await h.projectMembers.update({
      projectMember: { meta: { id: "pm-alice-web", version: 1n }, projectId: "web", tenantId: "alice", role: ProjectMemberRole.OWNER },
    });
    expect(up?.role).toBe(ProjectMemberRole.OWNER);
    await expectCode(h.projectMembers.update({ projectMember: { meta: { id: "pm-alice-web", version: 1n }, projectId: "web", tenantId: "alice", role: ProjectMemberRole.VIEWER } }), Code.Aborted);
    await expectCode(
      h.projectMembers.update({ projectMember: { meta: { id: "pm-alice-web", version: 2n }, projectId: "db", tenantId: "alice", role: ProjectMemberRole.VIEWER } }),
      Code.InvalidArgument,
      "cannot change",
    );
    expect((await h.projectMembers.get({ id: "pm-alice-web" })).projectMember).toEqual(up);
    await h.projectMembers.delete({ id: "pm-alice-web" });
    await expectCode(h.projectMembers.get({ id: "pm-alice-web" }), Code.NotFound);
  });

  it("needs the project and the member tenant to exist", async () => {
    await expectCode(h.projectMembers.create({ projectMember: { projectId: "no-project", tenantId: "alice", role: ProjectMemberRole.VIEWER } }), Code.NotFound, 'project "no-project" not found');
    await expectCode(h.projectMembers.create({ projectMember: { projectId: "web", tenantId: "nobody", role: ProjectMemberRole.VIEWER } }), Code.NotFound, 'tenant "nobody" not found');
    expect((await h.projectMembers.find({ projectId: "no-project" })).projectMembers).toEqual([]);
    expect((await h.projectMembers.find({ tenantId: "nobody" })).projectMembers).toEqual([]);
  });

  it("refuses duplicates by the unique constraint", async () => {
    await h.projectMembers.create({ projectMember: { projectId: "db", tenantId: "bob", role: ProjectMemberRole.VIEWER } });
    await expectCode(h.projectMembers.create({ projectMember: { projectId: "db", tenantId: "bob", role: ProjectMemberRole.OWNER } }), Code.AlreadyExists, '"bob" is already a member of project "db"');
    const racing = await Promise.allSettled(Array.from({ length: 8 }, () => h.projectMembers.create({ projectMember: { projectId: "db", tenantId: "carol", role: ProjectMemberRole.VIEWER } })));
    expect(racing.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await h.projectMembers.find({ projectId: "db", tenantId: "carol" })).projectMembers).toHaveLength(1);
  });

  it("finds by project and by member", async () => {
    await h.projectMembers.create({ projectMember: { meta: { id: "pf-1" }, projectId: "web", tenantId: "dave", role: ProjectMemberRole.VIEWER } });
    await h.projectMembers.create({ projectMember: { meta: { id: "pf-2" }, projectId: "db", tenantId: "dave", role: ProjectMemberRole.VIEWER } });
    expect(ids((await h.projectMembers.find({ tenantId: "dave" })).projectMembers)).toEqual(["pf-1", "pf-2"]);
    expect(ids((await h.projectMembers.find({ tenantId: "dave", projectId: "db" })).projectMembers)).toEqual(["pf-2"]);
    const page = await h.projectMembers.find({ tenantId: "dave", paging: { limit: 1 } });
    expect(ids(page.projectMembers)).toEqual(["pf-1"]);
    expect(ids((await h.projectMembers.find({ tenantId: "dave", paging: { limit: 1, pageToken: page.nextPageToken } })).projectMembers)).toEqual(["pf-2"]);
  });
});

describe("memberships racing deletes", () => {
  it("either make it before a tenant delete (and go with it) or find the tenant gone", async () => {
    for (const id of ["race-host", "race-1", "race-2", "race-3", "race-4"]) await h.tenants.create({ tenant: { meta: { id }, name: id } });
    const creates = ["race-1", "race-2", "race-3", "race-4"].map((m) => h.tenantMembers.create({ tenantMember: { tenantId: "race-host", memberId: m, role: TenantMemberRole.VIEWER } }));
    const results = await Promise.allSettled([...creates.slice(0, 2), h.tenants.delete({ id: "race-host" }), ...creates.slice(2)]);
    for (const r of results) if (r.status === "rejected") expect(Code[ConnectError.from(r.reason).code]).toBe(Code[Code.NotFound]);
    expect(results[2]!.status).toBe("fulfilled");
    await expectCode(h.tenants.get({ id: "race-host" }), Code.NotFound);
    expect((await h.tenantMembers.find({ tenantId: "race-host" })).tenantMembers).toEqual([]);
  });

  it("either make it before a project delete (and go with it) or find the project gone", async () => {
    await h.projects.create({ project: { meta: { id: "race-p" }, name: "p", tenantId: "host" } });
    const creates = ["alice", "bob", "carol", "dave"].map((t) => h.projectMembers.create({ projectMember: { projectId: "race-p", tenantId: t, role: ProjectMemberRole.VIEWER } }));
    const results = await Promise.allSettled([...creates.slice(0, 2), h.projects.delete({ id: "race-p" }), ...creates.slice(2)]);
    for (const r of results) if (r.status === "rejected") expect(Code[ConnectError.from(r.reason).code]).toBe(Code[Code.NotFound]);
    expect(results[2]!.status).toBe("fulfilled");
    expect((await h.projectMembers.find({ projectId: "race-p" })).projectMembers).toEqual([]);
  });

  it("a project create racing its tenant's delete: one of them is refused, never both through", async () => {
    await h.tenants.create({ tenant: { meta: { id: "race-t" }, name: "t" } });
    const [created, deleted] = await Promise.allSettled([h.projects.create({ project: { meta: { id: "race-tp" }, name: "p", tenantId: "race-t" } }), h.tenants.delete({ id: "race-t" })]);
    if (created.status === "fulfilled") {
      expect(deleted.status).toBe("rejected");
      expect(Code[ConnectError.from((deleted as PromiseRejectedResult).reason).code]).toBe(Code[Code.FailedPrecondition]);
      expect((await h.projects.get({ id: "race-tp" })).project?.tenantId).toBe("race-t");
    } else {
      expect(Code[ConnectError.from(created.reason).code]).toBe(Code[Code.NotFound]);
      expect(deleted.status).toBe("fulfilled");
    }
  });
});
