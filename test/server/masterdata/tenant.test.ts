import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectMemberRole } from "../../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberRole } from "../../../gen/masterdata/v1/tenant_member_pb.js";
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
const ids = (xs: { meta?: { id: string } }[]) => xs.map((x) => x.meta?.id);

describe("TenantService", () => {
  it("creates with a generated UUID v4 when no id is given", async () => {
    const { tenant: t } = await h.tenants.create({ tenant: { name: "generated", description: "no id" } });
    expect(t?.meta?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(t?.meta).toMatchObject({ kind: "Tenant", apiversion: "v1", version: 1n });
    expect(t?.meta?.createdTime).toEqual(t?.meta?.updatedTime);
    expect((await h.tenants.get({ id: t!.meta!.id })).tenant).toEqual(t);
  });

  it("creates with the client's id, meta and quotas, and gets it back", async () => {
    const { tenant: t } = await h.tenants.create(
      tenant("acme", {
        meta: { id: "acme", annotations: { "metal.io/tier": "gold" }, labels: ["customer", "eu"] },
        description: "the acme corporation",
        defaultQuotas: { machine: { max: 4 }, ip: { max: 0 } },
        quotas: { project: { max: 10 } },
      }),
    );
    const got = (await h.tenants.get({ id: "acme" })).tenant!;
    expect(got).toEqual(t);
    expect(got.name).toBe("tenant acme");
    expect(got.description).toBe("the acme corporation");
    expect(got.meta?.annotations).toEqual({ "metal.io/tier": "gold" });
    expect(got.meta?.labels).toEqual(["customer", "eu"]);
    expect(got.defaultQuotas?.machine?.max).toBe(4);
    expect(got.defaultQuotas?.ip?.max).toBe(0);
    expect(got.defaultQuotas?.network?.max).toBeUndefined();
    expect(got.quotas?.project?.max).toBe(10);
    expect(got.quotas?.machine?.max).toBeUndefined();
  });

  it("refuses a second tenant with the same id and keeps the first", async () => {
    await h.tenants.create(tenant("dup", { description: "first" }));
    await expectCode(h.tenants.create(tenant("dup", { description: "second" })), Code.AlreadyExists, 'tenant "dup" already exists');
    expect((await h.tenants.get({ id: "dup" })).tenant?.description).toBe("first");
  });

  it("answers NotFound for unknown ids on Get, Update and Delete", async () => {
    await expectCode(h.tenants.get({ id: "nobody" }), Code.NotFound, 'tenant "nobody" not found');
    await expectCode(h.tenants.update({ tenant: { meta: { id: "nobody", version: 1n }, name: "x" } }), Code.NotFound);
    await expectCode(h.tenants.delete({ id: "nobody" }), Code.NotFound);
  });

  it("updates every client field, bumps the version and keeps the creation time", async () => {
    const { tenant: t } = await h.tenants.create(tenant("upd", { quotas: { project: { max: 1 } }, meta: { id: "upd", labels: ["a"] } }));
    const { tenant: u } = await h.tenants.update({
      tenant: { meta: { id: "upd", version: t!.meta!.version, labels: ["b"], annotations: { k: "v" } }, name: "renamed", description: "changed", quotas: { machine: { max: 3 } } },
    });
    expect(u?.meta?.version).toBe(2n);
    expect(u?.meta?.createdTime).toEqual(t?.meta?.createdTime);
    expect(u!.meta!.updatedTime!.seconds * 1000n + BigInt(Math.floor(u!.meta!.updatedTime!.nanos / 1e6))).toBeGreaterThanOrEqual(
      t!.meta!.updatedTime!.seconds * 1000n + BigInt(Math.floor(t!.meta!.updatedTime!.nanos / 1e6)),
    );
    const got = (await h.tenants.get({ id: "upd" })).tenant!;
    expect(got).toEqual(u);
    expect(got.name).toBe("renamed");
    expect(got.quotas?.machine?.max).toBe(3);
    expect(got.quotas?.project?.max).toBeUndefined(); // replaced, not merged
    expect(got.meta?.labels).toEqual(["b"]);
    expect(got.meta?.annotations).toEqual({ k: "v" });
  });

  it("refuses an update carrying a stale version (optimistic locking) and keeps the newer state", async () => {
    const { tenant: t } = await h.tenants.create(tenant("lock-t"));
    const { tenant: v2 } = await h.tenants.update({ tenant: { ...t!, description: "first writer" } });
    expect(v2?.meta?.version).toBe(2n);
    const err = await expectCode(h.tenants.update({ tenant: { ...t!, description: "second writer" } }), Code.Aborted);
    expect(err.rawMessage).toContain('tenant "lock-t" was changed by someone else (you sent version 1, current is 2)');
    const got = (await h.tenants.get({ id: "lock-t" })).tenant!;
    expect(got.description).toBe("first writer");
    expect(got.meta?.version).toBe(2n);
    // A version from the future is just as stale.
    await expectCode(h.tenants.update({ tenant: { ...v2!, meta: { ...v2!.meta!, version: 7n } } }), Code.Aborted);
    // The right version goes through.
    expect((await h.tenants.update({ tenant: { ...v2!, description: "third" } })).tenant?.meta?.version).toBe(3n);
  });

  it("lets exactly one of two concurrent updates of the same version win", async () => {
    const { tenant: t } = await h.tenants.create(tenant("race-t"));
    const results = await Promise.allSettled(["a", "b", "c", "d"].map((d) => h.tenants.update({ tenant: { ...t!, description: d } })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await h.tenants.get({ id: "race-t" })).tenant?.meta?.version).toBe(2n);
  });

  it("finds by id, name, annotations and labels (all AND-ed), ordered by id", async () => {
    await h.tenants.create(tenant("find-b", { name: "finder", meta: { id: "find-b", annotations: { team: "x" }, labels: ["l1", "l2"] } }));
    await h.tenants.create(tenant("find-a", { name: "finder", meta: { id: "find-a", annotations: { team: "y" }, labels: ["l1"] } }));
    await h.tenants.create(tenant("find-c", { name: "other", meta: { id: "find-c", annotations: { team: "x" }, labels: ["l2"] } }));
    expect(ids((await h.tenants.find({ name: "finder" })).tenants)).toEqual(["find-a", "find-b"]);
    expect(ids((await h.tenants.find({ id: "find-c" })).tenants)).toEqual(["find-c"]);
    expect(ids((await h.tenants.find({ annotations: { team: "x" } })).tenants)).toEqual(["find-b", "find-c"]);
    expect(ids((await h.tenants.find({ labels: ["l2"] })).tenants)).toEqual(["find-b", "find-c"]);
    expect(ids((await h.tenants.find({ labels: ["l1", "l2"] })).tenants)).toEqual(["find-b"]);
    expect(ids((await h.tenants.find({ name: "finder", annotations: { team: "x" } })).tenants)).toEqual(["find-b"]);
    expect(ids((await h.tenants.find({ name: "finder", id: "find-c" })).tenants)).toEqual([]);
    expect((await h.tenants.find({ name: "nobody has this name" })).tenants).toEqual([]);
    const all = ids((await h.tenants.find({})).tenants);
    expect(all).toEqual([...all].sort());
    expect(all).toEqual(expect.arrayContaining(["acme", "find-a", "find-b", "find-c"]));
  });

  it("pages through Find with page tokens", async () => {
    for (const id of ["pg-4", "pg-2", "pg-5", "pg-1", "pg-3"]) await h.tenants.create(tenant(id, { name: "paged" }));
    const first = await h.tenants.find({ name: "paged", paging: { limit: 2 } });
    expect(ids(first.tenants)).toEqual(["pg-1", "pg-2"]);
    expect(first.nextPageToken).not.toBe("");
    const second = await h.tenants.find({ name: "paged", paging: { limit: 2, pageToken: first.nextPageToken } });
    expect(ids(second.tenants)).toEqual(["pg-3", "pg-4"]);
    const third = await h.tenants.find({ name: "paged", paging: { limit: 2, pageToken: second.nextPageToken } });
    expect(ids(third.tenants)).toEqual(["pg-5"]);
    expect(third.nextPageToken).toBe("");
    // Exactly a full last page: no token pointing at an empty page.
    const exact = await h.tenants.find({ name: "paged", paging: { limit: 5 } });
    expect(exact.tenants).toHaveLength(5);
    expect(exact.nextPageToken).toBe("");
    await expectCode(h.tenants.find({ paging: { limit: 2, pageToken: "not-a-token" } }), Code.InvalidArgument, "paging.page_token");
    await expectCode(h.tenants.find({ paging: { limit: 1001 } }), Code.InvalidArgument, "paging.limit");
  });

  it("is refused deletion while it owns projects, and deleted once they are gone", async () => {
    await h.tenants.create(tenant("owner"));
    await h.projects.create({ project: { meta: { id: "owned-1" }, name: "p", tenantId: "owner" } });
    await h.projects.create({ project: { meta: { id: "owned-2" }, name: "p", tenantId: "owner" } });
    await expectCode(h.tenants.delete({ id: "owner" }), Code.FailedPrecondition, 'tenant "owner" still owns 2 project(s)');
    expect((await h.tenants.get({ id: "owner" })).tenant?.meta?.id).toBe("owner");
    await h.projects.delete({ id: "owned-1" });
    await expectCode(h.tenants.delete({ id: "owner" }), Code.FailedPrecondition, "still owns 1 project(s)");
    await h.projects.delete({ id: "owned-2" });
    const { tenant: deleted } = await h.tenants.delete({ id: "owner" });
    expect(deleted?.meta?.id).toBe("owner");
    await expectCode(h.tenants.get({ id: "owner" }), Code.NotFound);
  });

  it("takes its memberships along when deleted: as host, as tenant member and as project member", async () => {
    for (const id of ["host-t", "user-t", "other-user", "proj-owner"]) await h.tenants.create(tenant(id));
    await h.projects.create({ project: { meta: { id: "shared-proj" }, name: "p", tenantId: "proj-owner" } });
    const hosted = await h.tenantMembers.create({ tenantMember: { tenantId: "host-t", memberId: "other-user", role: TenantMemberRole.OWNER } });
    const membership = await h.tenantMembers.create({ tenantMember: { tenantId: "proj-owner", memberId: "host-t", role: TenantMemberRole.VIEWER } });
    const pm = await h.projectMembers.create({ projectMember: { projectId: "shared-proj", tenantId: "host-t", role: ProjectMemberRole.EDITOR } });
    const untouched = await h.tenantMembers.create({ tenantMember: { tenantId: "proj-owner", memberId: "user-t", role: TenantMemberRole.VIEWER } });
    const untouchedPm = await h.projectMembers.create({ projectMember: { projectId: "shared-proj", tenantId: "user-t", role: ProjectMemberRole.VIEWER } });

    await h.tenants.delete({ id: "host-t" });

    await expectCode(h.tenantMembers.get({ id: hosted.tenantMember!.meta!.id }), Code.NotFound);
    await expectCode(h.tenantMembers.get({ id: membership.tenantMember!.meta!.id }), Code.NotFound);
    await expectCode(h.projectMembers.get({ id: pm.projectMember!.meta!.id }), Code.NotFound);
    expect((await h.tenantMembers.get({ id: untouched.tenantMember!.meta!.id })).tenantMember?.memberId).toBe("user-t");
    expect((await h.projectMembers.get({ id: untouchedPm.projectMember!.meta!.id })).projectMember?.tenantId).toBe("user-t");
    expect(ids((await h.tenantMembers.find({ memberId: "host-t" })).tenantMembers)).toEqual([]);
    expect(ids((await h.tenantMembers.find({ tenantId: "host-t" })).tenantMembers)).toEqual([]);
    // The other sides survive.
    expect((await h.tenants.get({ id: "other-user" })).tenant?.meta?.id).toBe("other-user");
    expect((await h.projects.get({ id: "shared-proj" })).project?.tenantId).toBe("proj-owner");
  });
});
