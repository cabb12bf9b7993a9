import { randomUUID } from "node:crypto";
import type { ServiceImpl } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { eq } from "drizzle-orm";
import { ProjectService } from "../../../gen/masterdata/v1/project_pb.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction, type Db } from "../../db/database.js";
import { failedPrecondition, invalidArgument } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { fromQuotaSet, metaFields, toProject } from "../convert/masterdata.js";
import { countProjectsOf, membershipsOfProject, projectMemberStore, projects, projectStore, tenantStore } from "../repositories/masterdata-repository.js";
import { validateFilters, validateIdRequest, validateProject } from "../validate.js";

export function createProjectService({ db }: { db: Db<any> }): ServiceImpl<typeof ProjectService> {
  return {
    async create(req) {
      validateProject(req.project, true);
      const p = req.project!;
      const row = await inTransaction(db, async (tx) => {
        // Locking the tenant serialises project creation per tenant, so the quota holds under concurrency.
        const tenant = await tenantStore.lock(tx, p.tenantId);
        const max = tenant.quotas.project;
        if (max !== undefined) {
          const n = await countProjectsOf(tx, tenant.id);
          if (n >= max) throw failedPrecondition(`tenant "${tenant.id}" may have at most ${max} project(s) and has ${n}`);
        }
        const quotas = fromQuotaSet(p.quotas);
        return projectStore.create(tx, {
          id: p.meta?.id || randomUUID(),
          ...metaFields(p.meta),
          name: p.name,
          description: p.description,
          tenantId: tenant.id,
          // A project that brings no quotas gets its tenant's defaults.
          quotas: Object.keys(quotas).length > 0 ? quotas : tenant.defaultQuotas,
        });
      });
      return { project: toProject(row) };
    },
    async update(req) {
      validateProject(req.project, false);
      const p = req.project!;
      const row = await inTransaction(db, async (tx) => {
        const current = await projectStore.get(tx, p.meta!.id);
        if (current.tenantId !== p.tenantId) {
          throw invalidArgument(`invalid request: project.tenant_id: a project cannot move from tenant "${current.tenantId}" to "${p.tenantId}"`);
        }
        return projectStore.update(tx, p.meta!.id, versionOf(p.meta!.version), {
          ...metaFields(p.meta),
          name: p.name,
          description: p.description,
          quotas: fromQuotaSet(p.quotas),
        });
      });
      return { project: toProject(row) };
    },
    async delete(req) {
      validateIdRequest(req.id);
      const row = await inTransaction(db, async (tx) => {
        await projectStore.lock(tx, req.id);
        await projectMemberStore.deleteWhere(tx, membershipsOfProject(req.id));
        return projectStore.delete(tx, req.id);
      });
      return { project: toProject(row) };
    },
    async get(req) {
      validateIdRequest(req.id);
      return { project: toProject(await projectStore.get(db, req.id)) };
    },
    async find(req) {
      validateFilters({ id: req.id, name: req.name, description: req.description, tenant_id: req.tenantId }, req.annotations);
      const page = await projectStore.find(
        db,
        [
          req.id !== undefined ? eq(projects.id, req.id) : undefined,
          req.name !== undefined ? eq(projects.name, req.name) : undefined,
          req.description !== undefined ? eq(projects.description, req.description) : undefined,
          req.tenantId !== undefined ? eq(projects.tenantId, req.tenantId) : undefined,
        ],
        req.annotations,
        pageRequest(req.paging),
      );
      return { projects: page.items.map(toProject), nextPageToken: page.nextPageToken };
    },
    async getHistory(req) {
      validateIdRequest(req.id);
      return { project: toProject(await projectStore.at(db, req.id, req.at ? timestampDate(req.at) : undefined)) };
    },
  };
}
