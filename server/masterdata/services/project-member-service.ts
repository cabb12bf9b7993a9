import type { ServiceImpl } from "@connectrpc/connect";
import type { ProjectMemberService } from "../../../gen/masterdata/v1/project_member_pb.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { invalidArgument } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { dateFromTimestamp } from "../convert/meta.js";
import { projectMemberPatchFrom, projectMemberRowFromCreate, toProjectMember } from "../convert/project-member.js";
import { projectMemberRepository as members } from "../repositories/project-member-repository.js";
import { projectRepository } from "../repositories/project-repository.js";
import { tenantRepository } from "../repositories/tenant-repository.js";
import { validateFindRequest, validateHistoryRequest, validateIdRequest } from "../validate/common.js";
import { validateProjectMember } from "../validate/project-member.js";

export interface ProjectMemberServiceDeps {
  db: DbHandle;
}

/** Memberships of tenants (users) in projects. */
export function createProjectMemberService({ db }: ProjectMemberServiceDeps): ServiceImpl<typeof ProjectMemberService> {
  return {
    async create(req) {
      validateProjectMember(req.projectMember, { create: true });
      const m = req.projectMember;
      const row = await inTransaction(db, async (tx) => {
        // Held (FOR KEY SHARE), neither side can be deleted before this commits.
        await projectRepository.hold(tx, m.projectId);
        await tenantRepository.hold(tx, m.tenantId);
        return members.create(tx, projectMemberRowFromCreate(m));
      });
      return { projectMember: toProjectMember(row) };
    },

    async update(req) {
      validateProjectMember(req.projectMember, { create: false });
      const m = req.projectMember;
      const meta = m.meta!;
      const row = await inTransaction(db, async (tx) => {
        const current = await members.get(tx, meta.id);
        if (current.projectId !== m.projectId || current.tenantId !== m.tenantId) {
          throw invalidArgument("invalid request: project_member: project_id and tenant_id cannot change; create a new membership instead");
        }
        return members.update(tx, meta.id, versionOf(meta.version), projectMemberPatchFrom(m));
      });
      return { projectMember: toProjectMember(row) };
    },

    async delete(req) {
      validateIdRequest(req);
      return { projectMember: toProjectMember(await inTransaction(db, (tx) => members.delete(tx, req.id))) };
    },

    async get(req) {
      validateIdRequest(req);
      return { projectMember: toProjectMember(await members.get(db, req.id)) };
    },

    async find(req) {
      validateFindRequest({ ids: { project_id: req.projectId, tenant_id: req.tenantId }, annotations: req.annotations, labels: req.labels });
      const page = await members.find(db, req, pageRequest(req.paging));
      return { projectMembers: page.items.map(toProjectMember), nextPageToken: page.nextPageToken };
    },

    async getHistory(req) {
      validateHistoryRequest(req);
      const at = req.at ? dateFromTimestamp(req.at) : undefined;
      return { projectMember: toProjectMember(await members.at(db, req.id, at)) };
    },
  };
}
