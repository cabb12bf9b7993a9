import { Code, ConnectError } from "@connectrpc/connect";
import { InvitationTarget, InvitationService as MdInvitations } from "../../../gen/masterdata/v1/invitation_pb.js";
import { ProjectMemberService as MdProjectMembers } from "../../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService as MdProjects } from "../../../gen/masterdata/v1/project_pb.js";
import { TenantMemberService as MdTenantMembers } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MdTenants } from "../../../gen/masterdata/v1/tenant_pb.js";
import { ProjectService } from "../../../gen/metal/api/v1/project_pb.js";
import { TenantService } from "../../../gen/metal/api/v1/tenant_pb.js";
import { UserService } from "../../../gen/metal/api/v1/user_pb.js";
import { THIS } from "./roles.js";
import type { MatrixWorld } from "./world.js";

/**
 * The requests of tenant and project self-service (docs/tenancy.md) and of
 * masterdata's invitations and memberships. Everything a case changes is its
 * own: fresh tenants, members, invitations and projects; whoever accepts
 * joins a fresh tenant or project, never t or pa, so no matrix caller ever
 * becomes a member of "this" target (Leave stays a NotFound, see below).
 */
type Factory = (w: MatrixWorld, token: string | undefined) => unknown;

const t = THIS.tenant;
const pa = THIS.project;
const admin = (w: MatrixWorld) => w.server.adminToken;

const freshTenant = async (w: MatrixWorld) => {
  const id = w.fresh("tn");
  await w.server.client(MdTenants, admin(w)).create({ tenant: { meta: { id }, name: id } });
  return id;
};

/** A project of t made for one case; the oracle learns its tenant. */
const freshProjectOfT = async (w: MatrixWorld) => {
  const id = w.fresh("tp");
  await w.server.client(MdProjects, admin(w)).create({ project: { meta: { id }, name: id, tenantId: t } });
  w.tenantOf[id] = t;
  return id;
};

/** A project of a tenant of its own (accepting an invitation into it concerns no role of the matrix). */
const freshForeignProject = async (w: MatrixWorld) => {
  const id = w.fresh("fp");
  await w.server.client(MdProjects, admin(w)).create({ project: { meta: { id }, name: id, tenantId: await freshTenant(w) } });
  return id;
};

const freshTenantMember = async (w: MatrixWorld) => {
  const member = await freshTenant(w);
  await w.server.client(MdTenantMembers, admin(w)).create({ tenantMember: { tenantId: t, memberId: member, role: 1 } });
  return member;
};

const freshProjectMember = async (w: MatrixWorld) => {
  const member = await freshTenant(w);
  await w.server.client(MdProjectMembers, admin(w)).create({ projectMember: { projectId: pa, tenantId: member, role: 1 } });
  return member;
};

/** The caller becomes a user of masterdata (what sign-in does), so that it can accept; callers without a token stay as they are. */
async function ensureUser(w: MatrixWorld, token: string | undefined): Promise<void> {
  const subject =
    token &&
    (await w.server
      .client(UserService, token)
      .get({})
      .then(
        (r) => r.user?.subject,
        () => undefined,
      ));
  if (!subject) return;
  await w.server
    .client(MdTenants, admin(w))
    .create({ tenant: { meta: { id: subject }, name: subject } })
    .catch((err: unknown) => {
      if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
    });
}

const tenantInvitation = async (w: MatrixWorld, tenant = t) => (await w.server.client(TenantService, admin(w)).invite({ tenant, role: 1 })).invite!.id;
const projectInvitation = async (w: MatrixWorld, project = pa) => (await w.server.client(ProjectService, admin(w)).invite({ project, role: 1 })).invite!.id;

export const TENANCY_VALID: Record<string, Factory> = {
  "metal.api.v1.TenantService.Get": () => ({ tenant: t }),
  "metal.api.v1.TenantService.Update": () => ({ tenant: t, description: "updated by the matrix" }),
  "metal.api.v1.TenantService.List": () => ({}),
  "metal.api.v1.TenantService.Invite": () => ({ tenant: t, role: 1 }),
  "metal.api.v1.TenantService.InviteGet": async (w) => ({ secret: (await w.server.client(TenantService, admin(w)).invite({ tenant: t, role: 1 })).secret }),
  "metal.api.v1.TenantService.InviteAccept": async (w, token) => {
    await ensureUser(w, token);
    return { secret: (await w.server.client(TenantService, admin(w)).invite({ tenant: await freshTenant(w), role: 1 })).secret };
  },
  "metal.api.v1.TenantService.InvitesList": () => ({ tenant: t }),
  "metal.api.v1.TenantService.InviteDelete": async (w) => ({ tenant: t, id: await tenantInvitation(w) }),
  "metal.api.v1.TenantService.MemberUpdate": async (w) => ({ tenant: t, member: await freshTenantMember(w), role: 2 }),
  "metal.api.v1.TenantService.MemberRemove": async (w) => ({ tenant: t, member: await freshTenantMember(w) }),

  "metal.api.v1.ProjectService.Create": () => ({ tenant: t, name: "made by the matrix" }),
  "metal.api.v1.ProjectService.Get": () => ({ project: pa }),
  "metal.api.v1.ProjectService.Update": () => ({ project: pa, description: "updated by the matrix" }),
  "metal.api.v1.ProjectService.Delete": async (w) => ({ project: await freshProjectOfT(w) }),
  "metal.api.v1.ProjectService.List": () => ({}),
  "metal.api.v1.ProjectService.Invite": () => ({ project: pa, role: 1 }),
  "metal.api.v1.ProjectService.InviteGet": async (w) => ({ secret: (await w.server.client(ProjectService, admin(w)).invite({ project: pa, role: 1 })).secret }),
  "metal.api.v1.ProjectService.InviteAccept": async (w, token) => {
    await ensureUser(w, token);
    return { secret: (await w.server.client(ProjectService, admin(w)).invite({ project: await freshForeignProject(w), role: 1 })).secret };
  },
  "metal.api.v1.ProjectService.InvitesList": () => ({ project: pa }),
  "metal.api.v1.ProjectService.InviteDelete": async (w) => ({ project: pa, id: await projectInvitation(w) }),
  "metal.api.v1.ProjectService.MemberUpdate": async (w) => ({ project: pa, member: await freshProjectMember(w), role: 2 }),
  "metal.api.v1.ProjectService.MemberRemove": async (w) => ({ project: pa, member: await freshProjectMember(w) }),

  "masterdata.v1.InvitationService.Create": () => ({ target: InvitationTarget.TENANT, targetId: t, role: 1, createdBy: "matrix" }),
  "masterdata.v1.InvitationService.Get": async (w) => ({ secret: (await w.server.client(TenantService, admin(w)).invite({ tenant: t, role: 1 })).secret }),
  "masterdata.v1.InvitationService.Accept": async (w) => {
    const { secret } = await w.server.client(MdInvitations, admin(w)).create({ target: InvitationTarget.TENANT, targetId: await freshTenant(w), role: 1, createdBy: "matrix" });
    return { secret, memberId: await freshTenant(w) };
  },
  "masterdata.v1.InvitationService.Find": () => ({ target: InvitationTarget.TENANT, targetId: t }),
  "masterdata.v1.InvitationService.Delete": async (w) => ({ id: await tenantInvitation(w), target: InvitationTarget.TENANT, targetId: t }),
  "masterdata.v1.MembershipService.SetRole": async (w) => ({ target: InvitationTarget.TENANT, targetId: t, memberId: await freshTenantMember(w), role: 2 }),
  "masterdata.v1.MembershipService.Remove": async (w) => ({ target: InvitationTarget.TENANT, targetId: t, memberId: await freshTenantMember(w) }),
};

const LEAVE =
  "a successful Leave takes the caller's grant from its tokens, which the matrix shares between cases; no caller is a member of t or pa, so the scope-only request is refused NotFound after authorization";

export const TENANCY_AUTHORIZATION_ONLY: Record<string, string> = {
  "metal.api.v1.TenantService.Leave": LEAVE,
  "metal.api.v1.ProjectService.Leave": LEAVE,
};
