import type { ServiceImpl } from "@connectrpc/connect";
import type { ProjectRole } from "../../../gen/metal/api/v1/common_pb.js";
import type { ProjectService } from "../../../gen/metal/api/v1/project_pb.js";
import { callerOf } from "../../auth/context.js";
import { toApiProject, toProjectInvite, toProjectMember } from "../../convert/tenancy.js";
import { invite, inviteAccept, inviteDelete, inviteGet, invitesList } from "../../usecases/tenancy/invitations.js";
import type { TenancyDeps } from "../../usecases/tenancy/masterdata.js";
import { removeMember, updateMember } from "../../usecases/tenancy/members.js";
import { projectsOf } from "../../usecases/tenancy/memberships.js";
import { createProject, deleteProject, getProject, updateProject } from "../../usecases/tenancy/projects.js";
import { validateInvite, validateInviteDelete, validateMember, validateProjectCreate, validateProjectList, validateSecret, validateTarget, validateUpdate } from "../../validate/tenancy.js";

/** Project self-service (docs/tenancy.md); the permission options decide who may call what. */
export function createProjectService(deps: TenancyDeps): ServiceImpl<typeof ProjectService> {
  const { md } = deps;
  return {
    async create(req) {
      validateProjectCreate(req);
      return { project: toApiProject(await createProject(md, { tenantId: req.tenant, id: req.id, name: req.name, description: req.description, quotas: req.quotas })) };
    },
    async get(req) {
      validateTarget("project", req.project);
      const { project, members } = await getProject(md, req.project);
      return { project: toApiProject(project), members: members.map((m) => toProjectMember(m.id, m.role, m.inherited, m.createdAt)) };
    },
    async update(req, ctx) {
      validateUpdate("project", { id: req.project, name: req.name, description: req.description, quotas: req.quotas });
      const project = await updateProject(md, callerOf(ctx).roles, { projectId: req.project, version: req.version, name: req.name, description: req.description, quotas: req.quotas });
      return { project: toApiProject(project) };
    },
    async delete(req) {
      validateTarget("project", req.project);
      return { project: toApiProject(await deleteProject(md, req.project)) };
    },
    async list(req, ctx) {
      validateProjectList(req);
      const mine = (await projectsOf(md, callerOf(ctx).subject)).filter((m) => req.tenant === undefined || m.project.tenantId === req.tenant);
      return { projects: mine.map((m) => toApiProject(m.project)), roles: Object.fromEntries(mine.map((m) => [m.project.meta?.id ?? "", m.role as number as ProjectRole])) };
    },
    async invite(req, ctx) {
      const role = validateInvite("project", { id: req.project, role: req.role, expiresIn: req.expiresIn });
      const r = await invite(md, "project", req.project, role, callerOf(ctx).subject, req.expiresIn);
      return { invite: toProjectInvite(r.invitation, r.name), secret: r.secret };
    },
    async inviteGet(req) {
      validateSecret(req.secret);
      const r = await inviteGet(md, "project", req.secret);
      return { invite: toProjectInvite(r.invitation, r.name) };
    },
    async inviteAccept(req, ctx) {
      validateSecret(req.secret);
      const r = await inviteAccept(md, "project", req.secret, callerOf(ctx).subject);
      return { project: r.invitation.projectId, projectName: r.name, role: r.invitation.role as number as ProjectRole };
    },
    async invitesList(req) {
      validateTarget("project", req.project);
      const r = await invitesList(md, "project", req.project);
      return { invites: r.invitations.map((i) => toProjectInvite(i, r.name)) };
    },
    async inviteDelete(req) {
      validateInviteDelete("project", req.project, req.id);
      const r = await inviteDelete(md, "project", req.project, req.id);
      return { invite: toProjectInvite(r.invitation, r.name) };
    },
    async memberUpdate(req) {
      const role = validateMember("project", req.project, req.member, req.role);
      await updateMember(deps, "project", req.project, req.member, role);
      return { member: toProjectMember(req.member, role, false, undefined) };
    },
    async memberRemove(req) {
      validateMember("project", req.project, req.member);
      const r = await removeMember(deps, "project", req.project, req.member);
      return { member: toProjectMember(req.member, r.previous, false, undefined) };
    },
    async leave(req, ctx) {
      validateTarget("project", req.project);
      const subject = callerOf(ctx).subject;
      const r = await removeMember(deps, "project", req.project, subject);
      return { member: toProjectMember(subject, r.previous, false, undefined) };
    },
  };
}
