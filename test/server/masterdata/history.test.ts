import { type Timestamp, timestampFromDate, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectMemberRole } from "../../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberRole } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { expectCode } from "../../helpers/expect.js";
import { type MasterdataHarness, nextMillisecond, openMasterdataHarness } from "./harness.js";

let h: MasterdataHarness;
beforeAll(async () => {
  h = await openMasterdataHarness();
});
afterAll(async () => {
  await h?.close();
});

/** `ts` moved by `ms` milliseconds. */
const shift = (ts: Timestamp | undefined, ms: number) => timestampFromMs(timestampMs(ts!) + ms);

describe("GetHistory", () => {
  it("returns a tenant as it was at any time, NotFound before its creation and after its deletion", async () => {
    const { tenant: v1 } = await h.tenants.create({ tenant: { meta: { id: "hist-t" }, name: "first", quotas: { project: { max: 1 } } } });
    await nextMillisecond();
    const { tenant: v2 } = await h.tenants.update({ tenant: { meta: { id: "hist-t", version: 1n }, name: "second" } });
    await nextMillisecond();
    const { tenant: v3 } = await h.tenants.update({ tenant: { meta: { id: "hist-t", version: 2n }, name: "third" } });
    await nextMillisecond();

    // Exactly at each change's updated_time, the state that change made.
    expect((await h.tenants.getHistory({ id: "hist-t", at: v1!.meta!.updatedTime })).tenant).toEqual(v1);
    expect((await h.tenants.getHistory({ id: "hist-t", at: v2!.meta!.updatedTime })).tenant).toEqual(v2);
    expect((await h.tenants.getHistory({ id: "hist-t", at: v3!.meta!.updatedTime })).tenant).toEqual(v3);
    // Just before a change, the state before it.
    expect((await h.tenants.getHistory({ id: "hist-t", at: shift(v2!.meta!.updatedTime, -1) })).tenant?.name).toBe("first");
    expect((await h.tenants.getHistory({ id: "hist-t", at: shift(v3!.meta!.updatedTime, -1) })).tenant?.quotas?.project?.max).toBeUndefined();
    expect((await h.tenants.getHistory({ id: "hist-t", at: shift(v2!.meta!.updatedTime, -1) })).tenant?.quotas?.project?.max).toBe(1);
    // Just before its creation it did not exist.
    await expectCode(h.tenants.getHistory({ id: "hist-t", at: shift(v1!.meta!.createdTime, -1) }), Code.NotFound, 'tenant "hist-t" did not exist at');
    // Without a time: now.
    expect((await h.tenants.getHistory({ id: "hist-t" })).tenant).toEqual(v3);

    await h.tenants.delete({ id: "hist-t" });
    await expectCode(h.tenants.getHistory({ id: "hist-t", at: timestampFromDate(new Date()) }), Code.NotFound);
    await expectCode(h.tenants.getHistory({ id: "hist-t" }), Code.NotFound);
    // The past is still there.
    expect((await h.tenants.getHistory({ id: "hist-t", at: v2!.meta!.updatedTime })).tenant).toEqual(v2);

    // The id is never given out again (roles and resources elsewhere name tenants by id); its past stays answerable.
    await expectCode(h.tenants.create({ tenant: { meta: { id: "hist-t" }, name: "reborn" } }), Code.AlreadyExists, "ids are never reused");
    await expectCode(h.tenants.getHistory({ id: "hist-t" }), Code.NotFound);
    expect((await h.tenants.getHistory({ id: "hist-t", at: v3!.meta!.updatedTime })).tenant?.name).toBe("third");
  });

  it("returns NotFound for an id that never existed", async () => {
    await expectCode(h.projects.getHistory({ id: "never", at: timestampFromDate(new Date()) }), Code.NotFound);
    await expectCode(h.tenantMembers.getHistory({ id: "never" }), Code.NotFound);
    await expectCode(h.projectMembers.getHistory({ id: "never" }), Code.NotFound);
  });

  it("records projects and the memberships a project delete cascades", async () => {
    await h.tenants.create({ tenant: { meta: { id: "hp-t" }, name: "t" } });
    await h.tenants.create({ tenant: { meta: { id: "hp-u" }, name: "u" } });
    const { project: p1 } = await h.projects.create({ project: { meta: { id: "hp-p" }, name: "one", tenantId: "hp-t" } });
    const { projectMember: m1 } = await h.projectMembers.create({ projectMember: { projectId: "hp-p", tenantId: "hp-u", role: ProjectMemberRole.VIEWER } });
    await nextMillisecond();
    const { project: p2 } = await h.projects.update({ project: { meta: { id: "hp-p", version: 1n }, name: "two", tenantId: "hp-t" } });
    const { projectMember: m2 } = await h.projectMembers.update({
      projectMember: { meta: { id: m1!.meta!.id, version: 1n }, projectId: "hp-p", tenantId: "hp-u", role: ProjectMemberRole.OWNER },
    });
    await nextMillisecond();
    await h.projects.delete({ id: "hp-p" });

    expect((await h.projects.getHistory({ id: "hp-p", at: p1!.meta!.updatedTime })).project).toEqual(p1);
    expect((await h.projects.getHistory({ id: "hp-p", at: p2!.meta!.updatedTime })).project).toEqual(p2);
    await expectCode(h.projects.getHistory({ id: "hp-p" }), Code.NotFound);
    expect((await h.projectMembers.getHistory({ id: m1!.meta!.id, at: shift(m2!.meta!.updatedTime, -1) })).projectMember?.role).toBe(ProjectMemberRole.VIEWER);
    expect((await h.projectMembers.getHistory({ id: m1!.meta!.id, at: m2!.meta!.updatedTime })).projectMember).toEqual(m2);
    // The cascade wrote a delete for the membership too.
    await expectCode(h.projectMembers.getHistory({ id: m1!.meta!.id }), Code.NotFound);
  });

  it("records tenant memberships, including deletes by a tenant delete", async () => {
    await h.tenants.create({ tenant: { meta: { id: "ht-host" }, name: "host" } });
    await h.tenants.create({ tenant: { meta: { id: "ht-user" }, name: "user" } });
    const { tenantMember: m } = await h.tenantMembers.create({ tenantMember: { tenantId: "ht-host", memberId: "ht-user", role: TenantMemberRole.EDITOR } });
    await nextMillisecond();
    await h.tenants.delete({ id: "ht-user" });
    expect((await h.tenantMembers.getHistory({ id: m!.meta!.id, at: m!.meta!.updatedTime })).tenantMember).toEqual(m);
    await expectCode(h.tenantMembers.getHistory({ id: m!.meta!.id }), Code.NotFound);
  });

  it("writes nothing for refused changes", async () => {
    await h.tenants.create({ tenant: { meta: { id: "quiet" }, name: "quiet" } });
    await h.projects.create({ project: { meta: { id: "quiet-p" }, name: "p", tenantId: "quiet" } });
    const before = await h.snapshot();
    await expectCode(h.tenants.update({ tenant: { meta: { id: "quiet", version: 5n }, name: "stale" } }), Code.Aborted);
    await expectCode(h.tenants.delete({ id: "quiet" }), Code.FailedPrecondition);
    await expectCode(h.projects.update({ project: { meta: { id: "quiet-p", version: 1n }, name: "p", tenantId: "ht-host" } }), Code.InvalidArgument);
    await expectCode(h.tenantMembers.create({ tenantMember: { tenantId: "quiet", memberId: "ghost", role: TenantMemberRole.VIEWER } }), Code.NotFound);
    await expectCode(h.projects.create({ project: { meta: { id: "quiet-p" }, name: "again", tenantId: "quiet" } }), Code.AlreadyExists);
    expect(await h.snapshot()).toEqual(before);
  });
});
