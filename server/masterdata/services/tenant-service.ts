import type { ServiceImpl } from "@connectrpc/connect";
import type { TenantService } from "../../../gen/masterdata/v1/tenant_pb.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { failedPrecondition } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { dateFromTimestamp } from "../convert/meta.js";
import { tenantPatchFrom, tenantRowFromCreate, toTenant } from "../convert/tenant.js";
import { projectMemberRepository } from "../repositories/project-member-repository.js";
import { projectRepository } from "../repositories/project-repository.js";
import { tenantMemberRepository } from "../repositories/tenant-member-repository.js";
import { tenantRepository as tenants } from "../repositories/tenant-repository.js";
import { validateFindRequest, validateHistoryRequest, validateIdRequest } from "../validate/common.js";
import { validateTenant } from "../validate/tenant.js";

export interface TenantServiceDeps {
  db: DbHandle;
}

/** Tenants: organisations and users that own projects and have members. */
export function createTenantService({ db }: TenantServiceDeps): ServiceImpl<typeof TenantService> {
  return {
    async create(req) {
      validateTenant(req.tenant, { create: true });
      const row = tenantRowFromCreate(req.tenant);
      return { tenant: toTenant(await inTransaction(db, (tx) => tenants.create(tx, row))) };
    },

    async update(req) {
      validateTenant(req.tenant, { create: false });
      const meta = req.tenant.meta!;
      const patch = tenantPatchFrom(req.tenant);
      return { tenant: toTenant(await inTransaction(db, (tx) => tenants.update(tx, meta.id, versionOf(meta.version), patch))) };
    },

    async delete(req) {
      validateIdRequest(req);
      const row = await inTransaction(db, async (tx) => {
        // The row lock keeps projects and memberships of this tenant from appearing while it goes.
        await tenants.lock(tx, req.id);
        const n = await projectRepository.countOfTenant(tx, req.id);
        if (n > 0) throw failedPrecondition(`tenant "${req.id}" still owns ${n} project(s); delete them first`);
        await tenantMemberRepository.deleteOfTenant(tx, req.id);
        await projectMemberRepository.deleteOfTenant(tx, req.id);
        return tenants.delete(tx, req.id);
      });
      return { tenant: toTenant(row) };
    },

    async get(req) {
      validateIdRequest(req);
      return { tenant: toTenant(await tenants.get(db, req.id)) };
    },

    async find(req) {
      validateFindRequest({ ids: { id: req.id }, texts: { name: { value: req.name, max: 128 } }, annotations: req.annotations, labels: req.labels });
      const page = await tenants.find(db, req, pageRequest(req.paging));
      return { tenants: page.items.map(toTenant), nextPageToken: page.nextPageToken };
    },

    async getHistory(req) {
      validateHistoryRequest(req);
      const at = req.at ? dateFromTimestamp(req.at) : undefined;
      return { tenant: toTenant(await tenants.at(db, req.id, at)) };
    },
  };
}
