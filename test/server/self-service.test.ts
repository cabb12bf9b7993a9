import { toJsonString } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { ProjectMemberService as MdProjectMembers } from "../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberService as MdTenantMembers } from "../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MdTenants } from "../../gen/masterdata/v1/tenant_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { ProjectService } from "../../gen/metal/api/v1/project_pb.js";
import { TenantService, TenantServiceInvitesListResponseSchema } from "../../gen/metal/api/v1/tenant_pb.js";
import { TokenService as ApiTokens } from "../../gen/metal/api/v1/token_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Issue 19: tenant and project self-service through metal-api (docs/tenancy.md):
 * invitations, role changes, leaving, the last owner, token grants following
 * removals and demotions, projects within the tenant's quotas, and strangers.
 */
let server: TestServer;
let n = 0;
const fresh = (p: string) => `${p}${++n}`;

beforeAll(async () => {
  server = await startTestServer();
});

/** A user (a tenant of masterdata, as sign-in creates it). */
async function user(id = fresh("user")): Promise<string> {
  await server.client(MdTenants, server.adminToken).create({ tenant: { meta: { id }, name: `User ${id}` } });
  return id;
}

/** A token of `subject` as sign-in would issue it, with these roles. */
async function tokenOf(subject: string, roles: { tenantRoles?: Record<string, TenantRole>; projectRoles?: Record<string, ProjectRole> }): Promise<string> {
  return (await server.client(AdminTokens, server.adminToken).create({ subject, roles })).secret;
}

/** An organisation with one owner member, and the owner's token. */
async function org(quotas: Record<string, { max?: number }> = {}): Promise<{ tenant: string; owner: string; ownerToken: string }> {
  const tenant = fresh("org");
  await server.client(MdTenants, server.adminToken).create({ tenant: { meta: { id: tenant }, name: `Org ${tenant}`, quotas } });
  const owner = await user();
  await server.client(MdTenantMembers, server.adminToken).create({ tenantMember: { tenantId: tenant, memberId: owner, role: 3 } });
  return { tenant, owner, ownerToken: await tokenOf(owner, { tenantRoles: { [tenant]: TenantRole.OWNER } }) };
}

describe("tenant invitations", () => {
  it("invite, look at, accept, list and withdraw; the secret works once", async () => {
    const { tenant, owner, ownerToken } = await org();
    const bob = await user();
    const bobToken = await tokenOf(bob, { tenantRoles: { [bob]: TenantRole.OWNER } });
    const tenants = server.client(TenantService, ownerToken);

    const { invite, secret } = await tenants.invite({ tenant, role: TenantRole.EDITOR });
    expect(invite).toMatchObject({ tenant, tenantName: `Org ${tenant}`, role: TenantRole.EDITOR, createdBy: owner });
    const lifetime = Number(invite!.expiresAt!.seconds - invite!.createdAt!.seconds);
    expect(lifetime).toBe(7 * 24 * 3600);
    const listed = await tenants.invitesList({ tenant });
    expect(listed.invites.map((i) => i.id)).toEqual([invite!.id]);
    expect(toJsonString(TenantServiceInvitesListResponseSchema, listed)).not.toContain(secret);

    const bobs = server.client(TenantService, bobToken);
    expect((await bobs.inviteGet({ secret })).invite).toMatchObject({ id: invite!.id, tenant, role: TenantRole.EDITOR });
    expect(await bobs.inviteAccept({ secret })).toMatchObject({ tenant, tenantName: `Org ${tenant}`, role: TenantRole.EDITOR });
    await expectCode(bobs.inviteAccept({ secret }), Code.NotFound);
    await expectCode(bobs.inviteGet({ secret }), Code.NotFound);
    expect((await tenants.invitesList({ tenant })).invites).toEqual([]);

    // The membership shows in whoami and the member list at once; the grant comes with a token issued after it.
    const who = (await server.client(UserService, bobToken).get({})).user!;
    expect(who.tenants).toContainEqual(expect.objectContaining({ tenant, role: TenantRole.EDITOR }));
    expect(who.token!.roles!.tenantRoles[tenant]).toBeUndefined();
    await expectCode(bobs.get({ tenant }), Code.PermissionDenied);
    expect((await tenants.get({ tenant })).members.map((m) => [m.id, m.role])).toEqual(
      [
        [bob, TenantRole.EDITOR],
        [owner, TenantRole.OWNER],
      ].sort(),
    );
    expect((await bobs.list({})).roles).toMatchObject({ [tenant]: TenantRole.EDITOR });

    const second = await tenants.invite({ tenant, role: TenantRole.VIEWER, expiresIn: { seconds: 3600n } });
    expect((await tenants.inviteDelete({ tenant, id: second.invite!.id })).invite?.id).toBe(second.invite!.id);
    await expectCode(bobs.inviteGet({ secret: second.secret }), Code.NotFound);
    await expectCode(bobs.inviteAccept({ secret: second.secret }), Code.NotFound);
  });

  it("wrong, foreign and malformed secrets, bounds, and someone else's invitation id are refused", async () => {
    const a = await org();
    const b = await org();
    const outsider = await tokenOf(await user(), {});
    await expectCode(server.client(TenantService, outsider).inviteGet({ secret: "inv_wrong" }), Code.NotFound);
    await expectCode(server.client(TenantService, outsider).inviteAccept({ secret: "inv_wrong" }), Code.NotFound);
    await expectCode(server.client(TenantService, outsider).inviteGet({ secret: "" }), Code.InvalidArgument);
    await expectCode(server.client(TenantService, outsider).inviteGet({ secret: "x".repeat(129) }), Code.InvalidArgument);
    await expectCode(server.client(TenantService, a.ownerToken).invite({ tenant: a.tenant, role: TenantRole.EDITOR, expiresIn: { seconds: 31n * 86400n } }), Code.InvalidArgument, "30 days");
    await expectCode(server.client(TenantService, a.ownerToken).invite({ tenant: a.tenant, role: TenantRole.UNSPECIFIED }), Code.InvalidArgument, "role");
    // A's invitation cannot be listed, withdrawn or changed through B: "not yours" is "not there".
    const { invite } = await server.client(TenantService, a.ownerToken).invite({ tenant: a.tenant, role: TenantRole.VIEWER });
    await expectCode(server.client(TenantService, b.ownerToken).inviteDelete({ tenant: b.tenant, id: invite!.id }), Code.NotFound);
    await expectCode(server.client(TenantService, b.ownerToken).inviteDelete({ tenant: a.tenant, id: invite!.id }), Code.PermissionDenied);
    expect((await server.client(TenantService, b.ownerToken).invitesList({ tenant: b.tenant })).invites).toEqual([]);
    // A project invitation's secret is no tenant invitation.
    const project = (await server.client(ProjectService, a.ownerToken).create({ tenant: a.tenant, name: "p" })).project!.id;
    const { secret } = await server.client(ProjectService, a.ownerToken).invite({ project, role: ProjectRole.VIEWER });
    await expectCode(server.client(TenantService, outsider).inviteGet({ secret }), Code.NotFound);
    await expectCode(server.client(TenantService, outsider).inviteAccept({ secret }), Code.NotFound);
  });

  it("a member accepting again gets AlreadyExists and the invitation stays for someone else", async () => {
    const { tenant, owner, ownerToken } = await org();
    const { secret } = await server.client(TenantService, ownerToken).invite({ tenant, role: TenantRole.VIEWER });
    await expectCode(server.client(TenantService, ownerToken).inviteAccept({ secret }), Code.AlreadyExists, owner);
    const carol = await user();
    await server.client(TenantService, await tokenOf(carol, {})).inviteAccept({ secret });
  });

  it("a subject that is no user cannot accept", async () => {
    const { tenant, ownerToken } = await org();
    const { secret } = await server.client(TenantService, ownerToken).invite({ tenant, role: TenantRole.VIEWER });
    await expectCode(server.client(TenantService, await tokenOf("Daemon-X", {})).inviteAccept({ secret }), Code.FailedPrecondition);
    await expectCode(server.client(TenantService, await tokenOf("ghost", {})).inviteAccept({ secret }), Code.FailedPrecondition, "sign in");
  });
});

describe("members: roles, removal, leaving, the last owner", () => {
  it("a demotion caps the member's tokens at once; a removal takes the grant; the member is locked out", async () => {
    const { tenant, ownerToken } = await org();
    const bob = await user();
    await server.client(MdTenantMembers, server.adminToken).create({ tenantMember: { tenantId: tenant, memberId: bob, role: 2 } });
    const bobToken = await tokenOf(bob, { tenantRoles: { [tenant]: TenantRole.EDITOR, [bob]: TenantRole.OWNER } });
    const bobs = server.client(TenantService, bobToken);
    await bobs.update({ tenant, description: "bob was here" });

    await server.client(TenantService, ownerToken).memberUpdate({ tenant, member: bob, role: TenantRole.VIEWER });
    expect((await server.client(UserService, bobToken).get({})).user!.token!.roles!.tenantRoles).toEqual({ [tenant]: TenantRole.VIEWER, [bob]: TenantRole.OWNER });
    await expectCode(bobs.update({ tenant, description: "again" }), Code.PermissionDenied);
    expect((await bobs.get({ tenant })).tenant?.description).toBe("bob was here");

    // A promotion grants nothing to tokens issued before it.
    await server.client(TenantService, ownerToken).memberUpdate({ tenant, member: bob, role: TenantRole.OWNER });
    expect((await server.client(UserService, bobToken).get({})).user!.token!.roles!.tenantRoles[tenant]).toBe(TenantRole.VIEWER);

    await server.client(TenantService, ownerToken).memberRemove({ tenant, member: bob });
    await expectCode(bobs.get({ tenant }), Code.PermissionDenied);
    expect((await server.client(UserService, bobToken).get({})).user!.token!.roles!.tenantRoles).toEqual({ [bob]: TenantRole.OWNER });
    await expectCode(server.client(TenantService, ownerToken).memberRemove({ tenant, member: bob }), Code.NotFound);
  });

  it("project grants minted from a tenant role end with it, except up to a direct project role", async () => {
    const { tenant, ownerToken } = await org();
    const carol = await user();
    await server.client(MdTenantMembers, server.adminToken).create({ tenantMember: { tenantId: tenant, memberId: carol, role: 3 } });
    const carolToken = await tokenOf(carol, { tenantRoles: { [tenant]: TenantRole.OWNER, [carol]: TenantRole.OWNER } });
    const p1 = (await server.client(ProjectService, ownerToken).create({ tenant, name: "one" })).project!.id;
    const p2 = (await server.client(ProjectService, ownerToken).create({ tenant, name: "two" })).project!.id;
    await server.client(MdProjectMembers, server.adminToken).create({ projectMember: { projectId: p2, tenantId: carol, role: 1 } });
    // Carol, still an owner of the tenant, mints a token naming the tenant's projects itself.
    const minted = (await server.client(ApiTokens, carolToken).create({ description: "ci", roles: { projectRoles: { [p1]: ProjectRole.OWNER, [p2]: ProjectRole.OWNER } } })).secret;
    expect((await server.client(ProjectService, minted).get({ project: p1 })).project?.id).toBe(p1);

    await server.client(TenantService, ownerToken).memberRemove({ tenant, member: carol });
    await expectCode(server.client(ProjectService, minted).get({ project: p1 }), Code.PermissionDenied);
    // Her direct viewer membership of the second project stays what it is.
    expect((await server.client(UserService, minted).get({})).user!.token!.roles!.projectRoles).toEqual({ [p2]: ProjectRole.VIEWER });
    await expectCode(server.client(ProjectService, minted).update({ project: p2, description: "x" }), Code.PermissionDenied);
  });

  it("a token left with no grant at all is revoked when its only membership ends", async () => {
    const { tenant, ownerToken } = await org();
    const dave = await user();
    await server.client(MdTenantMembers, server.adminToken).create({ tenantMember: { tenantId: tenant, memberId: dave, role: 1 } });
    const daveToken = await tokenOf(dave, { tenantRoles: { [tenant]: TenantRole.VIEWER } });
    await server.client(TenantService, ownerToken).memberRemove({ tenant, member: dave });
    await expectCode(server.client(UserService, daveToken).get({}), Code.Unauthenticated, "revoked");
  });

  it("the last owner can neither leave nor be removed nor demoted; with a second owner they can", async () => {
    const { tenant, owner, ownerToken } = await org();
    const tenants = server.client(TenantService, ownerToken);
    await expectCode(tenants.leave({ tenant }), Code.FailedPrecondition, "last owner");
    await expectCode(tenants.memberRemove({ tenant, member: owner }), Code.FailedPrecondition, "last owner");
    await expectCode(tenants.memberUpdate({ tenant, member: owner, role: TenantRole.EDITOR }), Code.FailedPrecondition, "last owner");

    const erin = await user();
    const { secret } = await tenants.invite({ tenant, role: TenantRole.OWNER });
    await server.client(TenantService, await tokenOf(erin, {})).inviteAccept({ secret });
    expect((await tenants.leave({ tenant })).member).toMatchObject({ id: owner, role: TenantRole.OWNER });
    expect((await server.client(TenantService, await tokenOf(erin, { tenantRoles: { [tenant]: TenantRole.OWNER } })).get({ tenant })).members.map((m) => m.id)).toEqual([erin]);
    // The leaver's token lost the tenant (and, granting nothing else, was revoked).
    await expectCode(tenants.get({ tenant }), Code.Unauthenticated);
  });

  it("a viewer leaves; members who are not owners cannot invite, change roles or remove", async () => {
    const { tenant } = await org();
    const fay = await user();
    await server.client(MdTenantMembers, server.adminToken).create({ tenantMember: { tenantId: tenant, memberId: fay, role: 2 } });
    const fayToken = await tokenOf(fay, { tenantRoles: { [tenant]: TenantRole.EDITOR, [fay]: TenantRole.OWNER } });
    const fays = server.client(TenantService, fayToken);
    await expectCode(fays.invite({ tenant, role: TenantRole.VIEWER }), Code.PermissionDenied);
    await expectCode(fays.memberUpdate({ tenant, member: fay, role: TenantRole.OWNER }), Code.PermissionDenied);
    await expectCode(fays.memberRemove({ tenant, member: fay }), Code.PermissionDenied);
    await expectCode(fays.invitesList({ tenant }), Code.PermissionDenied);
    expect((await fays.leave({ tenant })).member?.role).toBe(TenantRole.EDITOR);
    await expectCode(fays.leave({ tenant }), Code.PermissionDenied);
  });

  it("masterdata's refusals reach gRPC clients with their code (not a broken stream)", async () => {
    const { tenant, ownerToken } = await org();
    const stranger = await tokenOf(await user(), { tenantRoles: { [tenant]: TenantRole.VIEWER } });
    await expectCode(server.grpcClient(TenantService, stranger).leave({ tenant }), Code.NotFound, "is not a member");
    await expectCode(server.grpcClient(TenantService, ownerToken).leave({ tenant }), Code.FailedPrecondition, "last owner");
    await expectCode(server.grpcClient(TenantService, stranger).inviteAccept({ secret: "inv_nothing" }), Code.NotFound);
  });
});

describe("projects", () => {
  it("a tenant owner creates projects with quotas within the tenant's; over them is refused", async () => {
    const { tenant, ownerToken } = await org({ machine: { max: 10 }, ip: { max: 20 }, project: { max: 2 } });
    const projects = server.client(ProjectService, ownerToken);
    const { project } = await projects.create({ tenant, name: "web", description: "the web", quotas: { machine: 4 } });
    expect(project).toMatchObject({ tenant, name: "web", quotas: { machine: 4, ip: 20 } });
    expect(project!.quotas!.network).toBeUndefined();
    await expectCode(projects.create({ tenant, name: "big", quotas: { machine: 11 } }), Code.FailedPrecondition, "machine: 11 exceeds the tenant's limit of 10");
    await expectCode(projects.update({ project: project!.id, quotas: { ip: 21 } }), Code.FailedPrecondition, "ip: 21");
    expect((await projects.update({ project: project!.id, quotas: { machine: 10 } })).project?.quotas).toMatchObject({ machine: 10, ip: 20 });
    await projects.create({ tenant, name: "second" });
    await expectCode(projects.create({ tenant, name: "third" }), Code.FailedPrecondition, "at most 2 project");
    expect((await projects.list({ tenant })).projects.map((p) => p.name).sort()).toEqual(["second", "web"]);
    expect((await projects.list({})).roles[project!.id]).toBe(ProjectRole.OWNER);
  });

  it("editors of the tenant cannot create; a project's own owner cannot change its quotas; strangers are refused", async () => {
    const { tenant, ownerToken } = await org({ machine: { max: 10 } });
    const { project } = await server.client(ProjectService, ownerToken).create({ tenant, name: "p", quotas: { machine: 2 } });
    const id = project!.id;
    const editor = await tokenOf(await user(), { tenantRoles: { [tenant]: TenantRole.EDITOR } });
    await expectCode(server.client(ProjectService, editor).create({ tenant, name: "q" }), Code.PermissionDenied);
    const projectOwner = await tokenOf(await user(), { projectRoles: { [id]: ProjectRole.OWNER } });
    await expectCode(server.client(ProjectService, projectOwner).update({ project: id, quotas: { machine: 3 } }), Code.PermissionDenied, "quotas");
    expect((await server.client(ProjectService, projectOwner).update({ project: id, name: "renamed" })).project?.name).toBe("renamed");
    const other = await org();
    const stranger = server.client(ProjectService, other.ownerToken);
    await expectCode(stranger.get({ project: id }), Code.PermissionDenied);
    await expectCode(stranger.get({ project: "no-such-project" }), Code.PermissionDenied);
    await expectCode(stranger.create({ tenant, name: "x" }), Code.PermissionDenied);
    await expectCode(stranger.invite({ project: id, role: ProjectRole.VIEWER }), Code.PermissionDenied);
    await expectCode(server.client(TenantService, other.ownerToken).get({ tenant }), Code.PermissionDenied);
  });

  it("project invitation, membership with inherited members, role change, leave and delete", async () => {
    const { tenant, owner, ownerToken } = await org();
    const projects = server.client(ProjectService, ownerToken);
    const id = (await projects.create({ tenant, id: fresh("proj"), name: "api" })).project!.id;
    const gina = await user();
    const ginaToken = await tokenOf(gina, { tenantRoles: { [gina]: TenantRole.OWNER } });
    const { secret } = await projects.invite({ project: id, role: ProjectRole.EDITOR });
    expect((await server.client(ProjectService, ginaToken).inviteGet({ secret })).invite).toMatchObject({ project: id, projectName: "api", tenant, role: ProjectRole.EDITOR });
    expect(await server.client(ProjectService, ginaToken).inviteAccept({ secret })).toMatchObject({ project: id, role: ProjectRole.EDITOR });
    const members = (await projects.get({ project: id })).members.map((m) => [m.id, m.role, m.inherited]);
    expect(members).toEqual(
      [
        [gina, ProjectRole.EDITOR, false],
        [owner, ProjectRole.OWNER, true],
      ].sort(),
    );
    expect((await server.client(UserService, ginaToken).get({})).user!.projects).toContainEqual(expect.objectContaining({ project: id, role: ProjectRole.EDITOR, inherited: false }));

    const ginaProjectToken = await tokenOf(gina, { projectRoles: { [id]: ProjectRole.EDITOR }, tenantRoles: { [gina]: TenantRole.OWNER } });
    await projects.memberUpdate({ project: id, member: gina, role: ProjectRole.VIEWER });
    expect((await server.client(UserService, ginaProjectToken).get({})).user!.token!.roles!.projectRoles).toEqual({ [id]: ProjectRole.VIEWER });
    await expectCode(server.client(ProjectService, ginaProjectToken).update({ project: id, name: "x" }), Code.PermissionDenied);
    expect((await server.client(ProjectService, ginaProjectToken).leave({ project: id })).member?.id).toBe(gina);
    await expectCode(server.client(ProjectService, ginaProjectToken).get({ project: id }), Code.PermissionDenied);

    // The tenant's owner manages the project without a direct membership; its last direct member may go.
    await expectCode(projects.memberRemove({ project: id, member: owner }), Code.NotFound);
    expect((await projects.delete({ project: id })).project?.id).toBe(id);
    await expectCode(projects.get({ project: id }), Code.PermissionDenied);
  });
});
