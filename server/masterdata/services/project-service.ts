import type { ServiceImpl } from "@connectrpc/connect";
import type { ProjectService } from "../../../gen/masterdata/v1/project_pb.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { failedPrecondition, invalidArgument } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { dateFromTimestamp } from "../convert/meta.js";
import { projectPatchFrom, projectRowFromCreate, toProject } from "../convert/project.js";
import { projectMemberRepository } from "../repositories/project-member-repository.js";
import { projectRepository as projects } from "../repositories/project-repository.js";
import { tenantRepository } from "../repositories/tenant-repository.js";
import { validateFindRequest, validateHistoryRequest, validateIdRequest } from "../validate/common.js";
import { validateProject } from "../validate/project.js";

export interface ProjectServiceDeps {
  db: DbHandle;
  /**
   * What still uses the project outside masterdata, e.g. ["2 machines",
   * "1 network"]; empty when nothing does. masterdata does not know those
   * systems: whoever runs it next to them (metal-api) answers this.
   */
  projectUsage: (projectId: string) => Promise<string[]>;
  /** Told after a project is deleted, so grants naming it elsewhere (tokens) end too. */
  projectDeleted?: (projectId: string) => Promise<void>;
}

/**
 * Projects: owned by one tenant, limited by its project quota, seeded with its
 * default quotas. A project is deleted only when nothing uses it any more, and
 * its id is never given to another project (see used_ids).
 */
export function createProjectService({ db, projectUsage, projectDeleted }: ProjectServiceDeps): ServiceImpl<typeof ProjectService> {
  return {
    async create(req) {
      validateProject(req.project, { create: true });
      const p = req.project;
      const row = await inTransaction(db, async (tx) => {
        // The tenant's row lock serialises project creation per tenant: the count
        // below stays true until this transaction commits, on any replica.
        const tenant = await tenantRepository.lock(tx, p.tenantId);
        const max = tenant.quotas.project;
        if (max !== undefined) {
          const n = await projects.countOfTenant(tx, tenant.id);
          if (n >= max) throw failedPrecondition(`tenant "${tenant.id}" may own at most ${max} project(s) and owns ${n}`);
        }
        return projects.create(tx, projectRowFromCreate(p, tenant.defaultQuotas));
      });
      return { project: toProject(row) };
    },

    async update(req) {
      validateProject(req.project, { create: false });
      const p = req.project;
      const meta = p.meta!;
      const row = await inTransaction(db, async (tx) => {
        const current = await projects.get(tx, meta.id);
        if (current.tenantId !== p.tenantId) {
          throw invalidArgument(`invalid request: project.tenant_id: project "${meta.id}" belongs to tenant "${current.tenantId}" and cannot move to "${p.tenantId}"`);
        }
        return projects.update(tx, meta.id, versionOf(meta.version), projectPatchFrom(p));
      });
      return { project: toProject(row) };
    },

    async delete(req) {
      validateIdRequest(req);
      await projects.get(db, req.id);
      // Asked before the delete: what is created in the project while it goes is refused
      // once it is gone (metal-api checks the project exists on every create).
      const usage = await projectUsage(req.id);
      if (usage.length > 0) throw failedPrecondition(`project "${req.id}" still has ${usage.join(", ")}; free or delete them first`);
      const row = await inTransaction(db, async (tx) => {
        // Locked first, so no membership can be added between the two deletes.
        await projects.lock(tx, req.id);
        await projectMemberRepository.deleteOfProject(tx, req.id);
        return projects.delete(tx, req.id);
      });
      await projectDeleted?.(req.id);
      return { project: toProject(row) };
    },

    async get(req) {
      validateIdRequest(req);
      return { project: toProject(await projects.get(db, req.id)) };
    },

    async find(req) {
      validateFindRequest({
        ids: { id: req.id, tenant_id: req.tenantId },
        texts: { name: { value: req.name, max: 128 }, description: { value: req.description, max: 1024 } },
        annotations: req.annotations,
        labels: req.labels,
      });
      const page = await projects.find(db, req, pageRequest(req.paging));
      return { projects: page.items.map(toProject), nextPageToken: page.nextPageToken };
    },

    async getHistory(req) {
      validateHistoryRequest(req);
      const at = req.at ? dateFromTimestamp(req.at) : undefined;
      return { project: toProject(await projects.at(db, req.id, at)) };
    },
  };
}
