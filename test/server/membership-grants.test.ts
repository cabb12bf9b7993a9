import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { ProjectMemberService as MdProjectMembers } from "../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService as MdProjects } from "../../gen/masterdata/v1/project_pb.js";
import { TenantMemberService as MdTenantMembers } from "../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MdTenants } from "../../gen/masterdata/v1/tenant_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * An operator's masterdata.v1 membership changes (the raw CRUD, not the
 * self-service methods) end the member's token grants at once, as the
 * self-service MemberRemove and MemberUpdate do: a demotion caps them, a
 * removal drops them, and a token left with nothing is revoked.
 */
let server: TestServer;
let n = 0;
const fresh = (p: string) => `${p}${++n}`;

beforeAll(async () => {
  server = await startTestServer();
});

const tenants = () => server.client(MdTenants, server.adminToken);
const tokenOf = async (subject: string, roles: { tenantRoles?: Record<string, TenantRole>; projectRoles?: Record<string, ProjectRole> }) =>
  (await server.client(AdminTokens, server.adminToken).create({ subject, roles })).secret;
const rolesOf = async (token: string) => (await server.client(UserService, token).get({})).user?.token?.roles;

describe("masterdata.v1 membership changes and the member's tokens", () => {
  it("a tenant membership demoted caps the member's token; deleted, the grant goes and a token left with nothing is revoked", async () => {
    const org = fresh("org");
    const alice = fresh("alice");
    for (const id of [org, alice]) await tenants().create({ tenant: { meta: { id }, name: id } });
    const { tenantMember } = await server.client(MdTenantMembers, server.adminToken).create({ tenantMember: { tenantId: org, memberId: alice, role: 3 } });
    const both = await tokenOf(alice, { tenantRoles: { [org]: TenantRole.OWNER, [alice]: TenantRole.OWNER } });
    const onlyOrg = await tokenOf(alice, { tenantRoles: { [org]: TenantRole.OWNER } });

    const { tenantMember: demoted } = await server.client(MdTenantMembers, server.adminToken).update({ tenantMember: { ...tenantMember!, role: 1 } });
    expect((await rolesOf(both))?.tenantRoles).toEqual({ [org]: TenantRole.VIEWER, [alice]: TenantRole.OWNER });
    expect((await rolesOf(onlyOrg))?.tenantRoles).toEqual({ [org]: TenantRole.VIEWER });

    await server.client(MdTenantMembers, server.adminToken).delete({ id: demoted!.meta!.id });
    expect((await rolesOf(both))?.tenantRoles).toEqual({ [alice]: TenantRole.OWNER });
    await expectCode(rolesOf(onlyOrg), Code.Unauthenticated);
  });

  it("a tenant membership deleted also ends the grants on the tenant's projects that a token minted from it named", async () => {
    const org = fresh("org");
    const carol = fresh("carol");
    for (const id of [org, carol]) await tenants().create({ tenant: { meta: { id }, name: id } });
    const project = fresh("p");
    await server.client(MdProjects, server.adminToken).create({ project: { meta: { id: project }, name: project, tenantId: org } });
    const { tenantMember } = await server.client(MdTenantMembers, server.adminToken).create({ tenantMember: { tenantId: org, memberId: carol, role: 2 } });
    const minted = await tokenOf(carol, { tenantRoles: { [carol]: TenantRole.OWNER }, projectRoles: { [project]: ProjectRole.EDITOR } });

    await server.client(MdTenantMembers, server.adminToken).delete({ id: tenantMember!.meta!.id });
    const roles = await rolesOf(minted);
    expect(roles?.projectRoles).toEqual({});
    expect(roles?.tenantRoles).toEqual({ [carol]: TenantRole.OWNER });
  });

  it("a project membership deleted ends the member's grant on that project only; a promotion changes no token", async () => {
    const org = fresh("org");
    const bob = fresh("bob");
    for (const id of [org, bob]) await tenants().create({ tenant: { meta: { id }, name: id } });
    const [p1, p2] = [fresh("p"), fresh("p")];
    for (const id of [p1, p2]) await server.client(MdProjects, server.adminToken).create({ project: { meta: { id }, name: id, tenantId: org } });
    const members = server.client(MdProjectMembers, server.adminToken);
    const { projectMember } = await members.create({ projectMember: { projectId: p1, tenantId: bob, role: 1 } });
    await members.create({ projectMember: { projectId: p2, tenantId: bob, role: 2 } });
    const token = await tokenOf(bob, { projectRoles: { [p1]: ProjectRole.VIEWER, [p2]: ProjectRole.EDITOR } });

    const { projectMember: promoted } = await members.update({ projectMember: { ...projectMember!, role: 3 } });
    expect((await rolesOf(token))?.projectRoles).toEqual({ [p1]: ProjectRole.VIEWER, [p2]: ProjectRole.EDITOR });

    await members.delete({ id: promoted!.meta!.id });
    expect((await rolesOf(token))?.projectRoles).toEqual({ [p2]: ProjectRole.EDITOR });
  });
});
