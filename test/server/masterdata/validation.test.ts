import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectMemberRole } from "../../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberRole } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { expectCode } from "../../helpers/expect.js";
import { type MasterdataHarness, openMasterdataHarness } from "./harness.js";

let h: MasterdataHarness;
let tmId: string;
let pmId: string;
beforeAll(async () => {
  h = await openMasterdataHarness();
  await h.tenants.create({ tenant: { meta: { id: "base" }, name: "base" } });
  await h.tenants.create({ tenant: { meta: { id: "user" }, name: "user" } });
  await h.projects.create({ project: { meta: { id: "base-p" }, name: "p", tenantId: "base" } });
  tmId = (await h.tenantMembers.create({ tenantMember: { tenantId: "base", memberId: "user", role: TenantMemberRole.VIEWER } })).tenantMember!.meta!.id;
  pmId = (await h.projectMembers.create({ projectMember: { projectId: "base-p", tenantId: "user", role: ProjectMemberRole.VIEWER } })).projectMember!.meta!.id;
});
afterAll(async () => {
  await h?.close();
});

const long = (n: number) => "a".repeat(n);
const t = (extra: Record<string, unknown> = {}, meta: Record<string, unknown> = { id: "new-t" }) => ({ tenant: { meta, name: "n", ...extra } });
const tu = (extra: Record<string, unknown> = {}, meta: Record<string, unknown> = { id: "base", version: 1n }) => ({ tenant: { meta, name: "n", ...extra } });
const p = (extra: Record<string, unknown> = {}, meta: Record<string, unknown> = { id: "new-p" }) => ({ project: { meta, name: "n", tenantId: "base", ...extra } });
const tm = (extra: Record<string, unknown> = {}) => ({ tenantMember: { tenantId: "user", memberId: "base", role: TenantMemberRole.OWNER, ...extra } });
const pm = (extra: Record<string, unknown> = {}) => ({ projectMember: { projectId: "base-p", tenantId: "base", role: ProjectMemberRole.OWNER, ...extra } });

// Each case: a call that must be refused with InvalidArgument naming `path`, and change nothing.
const cases: [string, () => Promise<unknown>, string][] = [
  // tenant create
  ["tenant missing", () => h.tenants.create({}), "tenant: is required"],
  ["tenant id uppercase", () => h.tenants.create(t({}, { id: "Acme" })), 'tenant.meta.id: "Acme" must be lowercase'],
  ["tenant id with a space", () => h.tenants.create(t({}, { id: "a b" })), "tenant.meta.id"],
  ["tenant id starting with a dash", () => h.tenants.create(t({}, { id: "-a" })), "tenant.meta.id"],
  ["tenant id ending with a dot", () => h.tenants.create(t({}, { id: "a." })), "tenant.meta.id"],
  ["tenant id of 129 characters", () => h.tenants.create(t({}, { id: long(129) })), "tenant.meta.id: must be at most 128 characters"],
  ["tenant without name", () => h.tenants.create(t({ name: "" })), "tenant.name: is required"],
  ["tenant with blank name", () => h.tenants.create(t({ name: "   " })), "tenant.name: is required"],
  ["tenant name of 129 characters", () => h.tenants.create(t({ name: long(129) })), "tenant.name: must be at most 128 characters"],
  ["tenant name with a control character", () => h.tenants.create(t({ name: "a\u0007b" })), "tenant.name: must not contain control characters"],
  ["tenant description of 1025 characters", () => h.tenants.create(t({ description: long(1025) })), "tenant.description"],
  ["negative tenant quota", () => h.tenants.create(t({ quotas: { project: { max: -1 } } })), "tenant.quotas.project.max: -1 must not be negative"],
  ["negative default quota", () => h.tenants.create(t({ defaultQuotas: { machine: { max: -5 } } })), "tenant.default_quotas.machine.max"],
  ["foreign apiversion", () => h.tenants.create(t({}, { id: "x", apiversion: "v9" })), 'tenant.meta.apiversion: "v9" is not v1'],
  ["foreign kind", () => h.tenants.create(t({}, { id: "x", kind: "Project" })), 'tenant.meta.kind: "Project" is not Tenant'],
  ["bad annotation key", () => h.tenants.create(t({}, { id: "x", annotations: { "bad key!": "v" } })), "tenant.meta.annotations"],
  ["annotation value of 257 characters", () => h.tenants.create(t({}, { id: "x", annotations: { k: long(257) } })), 'tenant.meta.annotations["k"]'],
  ["65 labels", () => h.tenants.create(t({}, { id: "x", labels: Array.from({ length: 65 }, (_, i) => `l${i}`) })), "tenant.meta.labels: must have at most 64 entries"],
  ["duplicate labels", () => h.tenants.create(t({}, { id: "x", labels: ["a", "a"] })), "tenant.meta.labels[1]: is a duplicate"],
  ["empty label", () => h.tenants.create(t({}, { id: "x", labels: [""] })), "tenant.meta.labels[0]: must not be empty"],
  // tenant update
  ["tenant update without meta", () => h.tenants.update({ tenant: { name: "n" } }), "tenant.meta: is required"],
  ["tenant update without id", () => h.tenants.update(tu({}, { version: 1n })), "tenant.meta.id: is required"],
  ["tenant update without version", () => h.tenants.update(tu({}, { id: "base" })), "tenant.meta.version: is required"],
  ["tenant update with negative quota", () => h.tenants.update(tu({ quotas: { ip: { max: -1 } } })), "tenant.quotas.ip.max"],
  ["tenant update without name", () => h.tenants.update(tu({ name: "" })), "tenant.name: is required"],
  // project create and update
  ["project missing", () => h.projects.create({}), "project: is required"],
  ["project without tenant", () => h.projects.create(p({ tenantId: "" })), "project.tenant_id: is required"],
  ["project with a malformed tenant", () => h.projects.create(p({ tenantId: "Base" })), "project.tenant_id"],
  ["project id uppercase", () => h.projects.create(p({}, { id: "P1" })), "project.meta.id"],
  ["project without name", () => h.projects.create(p({ name: "" })), "project.name: is required"],
  ["negative project quota", () => h.projects.create(p({ quotas: { network: { max: -1 } } })), "project.quotas.network.max"],
  ["project update without version", () => h.projects.update(p({}, { id: "base-p" })), "project.meta.version: is required"],
  ["project update with negative quota", () => h.projects.update(p({ quotas: { machine: { max: -2 } } }, { id: "base-p", version: 1n })), "project.quotas.machine.max"],
  // tenant members
  ["tenant member missing", () => h.tenantMembers.create({}), "tenant_member: is required"],
  ["tenant member without role", () => h.tenantMembers.create(tm({ role: TenantMemberRole.UNSPECIFIED })), "tenant_member.role: must be set"],
  ["tenant member with unknown role", () => h.tenantMembers.create(tm({ role: 9 })), "tenant_member.role: 9 is not a known value"],
  ["tenant member without member", () => h.tenantMembers.create(tm({ memberId: "" })), "tenant_member.member_id: is required"],
  ["tenant member with malformed tenant", () => h.tenantMembers.create(tm({ tenantId: "a/b" })), "tenant_member.tenant_id"],
  ["tenant member update without version", () => h.tenantMembers.update({ tenantMember: { ...tm().tenantMember, meta: { id: tmId } } }), "tenant_member.meta.version"],
  ["tenant member update to no role", () => h.tenantMembers.update({ tenantMember: { meta: { id: tmId, version: 1n }, tenantId: "base", memberId: "user" } }), "tenant_member.role"],
  // project members
  ["project member missing", () => h.projectMembers.create({}), "project_member: is required"],
  ["project member without project", () => h.projectMembers.create(pm({ projectId: "" })), "project_member.project_id: is required"],
  ["project member without tenant", () => h.projectMembers.create(pm({ tenantId: "" })), "project_member.tenant_id: is required"],
  ["project member without role", () => h.projectMembers.create(pm({ role: ProjectMemberRole.UNSPECIFIED })), "project_member.role: must be set"],
  ["project member update without meta", () => h.projectMembers.update(pm()), "project_member.meta: is required"],
  [
    "project member update to unknown role",
    () => h.projectMembers.update({ projectMember: { ...pm().projectMember, tenantId: "user", meta: { id: pmId, version: 1n }, role: 4 as ProjectMemberRole } }),
    "project_member.role: 4",
  ],
  // get, delete, history
  ["get without id", () => h.tenants.get({ id: "" }), "id: is required"],
  ["get with a malformed id", () => h.projects.get({ id: "../etc" }), 'id: "../etc" must be lowercase'],
  ["delete without id", () => h.tenants.delete({ id: "" }), "id: is required"],
  ["delete with a malformed id", () => h.projectMembers.delete({ id: "X" }), "id:"],
  ["delete with a 129 character id", () => h.tenantMembers.delete({ id: long(129) }), "id: must be at most 128 characters"],
  ["history without id", () => h.tenants.getHistory({ id: "" }), "id: is required"],
  ["history with bad nanos", () => h.tenants.getHistory({ id: "base", at: { seconds: 1n, nanos: 1_000_000_000 } }), "at.nanos"],
  ["history beyond year 9999", () => h.projects.getHistory({ id: "base-p", at: { seconds: 253_402_300_800n, nanos: 0 } }), "at.seconds"],
  // find
  ["find with a malformed id filter", () => h.tenants.find({ id: "A B" }), "id:"],
  ["find with a malformed tenant filter", () => h.projects.find({ tenantId: "UPPER" }), "tenant_id:"],
  ["find with a 129 character name", () => h.tenants.find({ name: long(129) }), "name: must be at most 128 characters"],
  ["find with a bad annotation key", () => h.projects.find({ annotations: { "a b": "c" } }), "annotations"],
  ["find with too many labels", () => h.tenantMembers.find({ labels: Array.from({ length: 65 }, (_, i) => `l${i}`) }), "labels: must have at most 64 entries"],
  ["find with a malformed member filter", () => h.tenantMembers.find({ memberId: "Bob" }), "member_id:"],
  ["find with a malformed project filter", () => h.projectMembers.find({ projectId: "" }), "project_id: is required"],
  ["find with a foreign page token", () => h.projectMembers.find({ paging: { pageToken: "abc" } }), "paging.page_token"],
  ["find with a page too large", () => h.tenants.find({ paging: { limit: 5000 } }), "paging.limit"],
];

describe("validation", () => {
  it.each(cases)("refuses %s with InvalidArgument and changes nothing", async (_name, call, path) => {
    const before = await h.snapshot();
    await expectCode(call(), Code.InvalidArgument, path);
    expect(await h.snapshot()).toEqual(before);
  });

  it("reports every problem of a request at once", async () => {
    const err = await expectCode(h.tenants.create({ tenant: { meta: { id: "Bad" }, name: "", quotas: { machine: { max: -1 }, ip: { max: -2 } } } }), Code.InvalidArgument);
    for (const path of ["tenant.meta.id", "tenant.name", "tenant.quotas.machine.max", "tenant.quotas.ip.max"]) expect(err.rawMessage).toContain(path);
  });

  it("accepts the edges of the rules", async () => {
    const id = `a${"b".repeat(126)}z`;
    const { tenant } = await h.tenants.create({
      tenant: { meta: { id, labels: ["x"] }, name: long(128), description: long(1024), quotas: { project: { max: 0 } }, defaultQuotas: { ip: { max: 0 } } },
    });
    expect(tenant?.meta?.id).toHaveLength(128);
    for (const ok of ["alice@example.com", "a", "0", "user_1", "a.b-c"]) {
      expect((await h.tenants.create({ tenant: { meta: { id: ok }, name: ok } })).tenant?.meta?.id).toBe(ok);
    }
    // A create may name kind and apiversion as long as they are right; a version it sends is ignored.
    const { tenant: named } = await h.tenants.create({ tenant: { meta: { id: "named", kind: "Tenant", apiversion: "v1", version: 42n }, name: "n" } });
    expect(named?.meta?.version).toBe(1n);
  });
});
