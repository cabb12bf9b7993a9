import { randomUUID } from "node:crypto";
import type { ServiceImpl } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { eq } from "drizzle-orm";
import { ProjectMemberService } from "../../../gen/masterdata/v1/project_member_pb.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction, type Db } from "../../db/database.js";
import { invalidArgument } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { metaFields, toProjectMember } from "../convert/masterdata.js";
import { projectMembers, projectMemberStore, projectStore, tenantStore } from "../repositories/masterdata-repository.js";
import { validateFilters, validateIdRequest, validateMember } from "../validate.js";

export function createProjectMemberService({ db }: { db: Db<any> }): ServiceImpl<typeof ProjectMemberService> {
  return {
    async create(req) {
      const m = req.projectMember;
      validateMember("project_member", m, { project_id: m?.projectId ?? "", tenant_id: m?.tenantId ?? "" }, true);
      const row = await inTransaction(db, async (tx) => {
        // Lock both sides: neither can be deleted before this membership commits.
        await projectStore.lock(tx, m!.projectId);
        await tenantStore.lock(tx, m!.tenantId);
        return projectMemberStore.create(tx, {
          id: m!.meta?.id || randomUUID(),
          ...metaFields(m!.meta),
          projectId: m!.projectId,
          tenantId: m!.tenantId,
          role: m!.role,
        });
      });
      return { projectMember: toProjectMember(row) };
    },
    async update(req) {
      const m = req.projectMember;
      validateMember("project_member", m, { project_id: m?.projectId ?? "", tenant_id: m?.tenantId ?? "" }, false);
      const row = await inTransaction(db, async (tx) => {
        const current = await projectMemberStore.get(tx, m!.meta!.id);
        if (current.projectId !== m!.projectId || current.tenantId !== m!.tenantId) {
          throw invalidArgument("invalid request: project_member: project_id and tenant_id cannot change; create a new membership");
        }
        return projectMemberStore.update(tx, m!.meta!.id, versionOf(m!.meta!.version), { ...metaFields(m!.meta), role: m!.role });
      });
      return { projectMember: toProjectMember(row) };
    },
    async delete(req) {
      validateIdRequest(req.id);
      return { projectMember: toProjectMember(await inTransaction(db, (tx) => projectMemberStore.delete(tx, req.id))) };
    },
    async get(req) {
      validateIdRequest(req.id);
      return { projectMember: toProjectMember(await projectMemberStore.get(db, req.id)) };
    },
    async find(req) {
      validateFilters({ project_id: req.projectId, tenant_id: req.tenantId }, {});
      const page = await projectMemberStore.find(
        db,
        [
          req.projectId !== undefined ? eq(projectMembers.projectId, req.projectId) : undefined,
          req.tenantId !== undefined ? eq(projectMembers.tenantId, req.tenantId) : undefined,
        ],
        {},
        pageRequest(req.paging),
      );
      return { projectMembers: page.items.map(toProjectMember), nextPageToken: page.nextPageToken };
    },
    async getHistory(req) {
      validateIdRequest(req.id);
      return { projectMember: toProjectMember(await projectMemberStore.at(db, req.id, req.at ? timestampDate(req.at) : undefined)) };
    },
  };
}
