import { randomUUID } from "node:crypto";
import type { ServiceImpl } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { eq } from "drizzle-orm";
import { TenantService, type Tenant } from "../../../gen/masterdata/v1/tenant_pb.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction, type Db } from "../../db/database.js";
import { failedPrecondition } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { fromQuotaSet, metaFields, toTenant } from "../convert/masterdata.js";
import {
  countProjectsOf,
  membershipsOfTenant,
  projectMembershipsOfTenant,
  projectMemberStore,
  tenants,
  tenantMemberStore,
  tenantStore,
} from "../repositories/masterdata-repository.js";
import { validateFilters, validateIdRequest, validateTenant } from "../validate.js";

/** The columns a client sets, the same for create and update. */
const tenantColumns = (t: Tenant) => ({
  ...metaFields(t.meta),
  name: t.name,
  description: t.description,
  defaultQuotas: fromQuotaSet(t.defaultQuotas),
  quotas: fromQuotaSet(t.quotas),
});

export function createTenantService({ db }: { db: Db<any> }): ServiceImpl<typeof TenantService> {
  return {
    async create(req) {
      validateTenant(req.tenant, true);
      const t = req.tenant!;
      const row = await inTransaction(db, (tx) =>
        tenantStore.create(tx, { id: t.meta?.id || randomUUID(), ...tenantColumns(t) }),
      );
      return { tenant: toTenant(row) };
    },
    async update(req) {
      validateTenant(req.tenant, false);
      const t = req.tenant!;
      const row = await inTransaction(db, (tx) =>
        tenantStore.update(tx, t.meta!.id, versionOf(t.meta!.version), tenantColumns(t)),
      );
      return { tenant: toTenant(row) };
    },
    async delete(req) {
      validateIdRequest(req.id);
      const row = await inTransaction(db, async (tx) => {
        // The lock keeps projects from being created for this tenant while it goes.
        await tenantStore.lock(tx, req.id);
        const n = await countProjectsOf(tx, req.id);
        if (n > 0) throw failedPrecondition(`tenant "${req.id}" still owns ${n} project(s); delete them first`);
        await tenantMemberStore.deleteWhere(tx, membershipsOfTenant(req.id));
        await projectMemberStore.deleteWhere(tx, projectMembershipsOfTenant(req.id));
        return tenantStore.delete(tx, req.id);
      });
      return { tenant: toTenant(row) };
    },
    async get(req) {
      validateIdRequest(req.id);
      return { tenant: toTenant(await tenantStore.get(db, req.id)) };
    },
    async find(req) {
      validateFilters({ id: req.id, name: req.name }, req.annotations);
      const page = await tenantStore.find(
        db,
        [req.id !== undefined ? eq(tenants.id, req.id) : undefined, req.name !== undefined ? eq(tenants.name, req.name) : undefined],
        req.annotations,
        pageRequest(req.paging),
      );
      return { tenants: page.items.map(toTenant), nextPageToken: page.nextPageToken };
    },
    async getHistory(req) {
      validateIdRequest(req.id);
      return { tenant: toTenant(await tenantStore.at(db, req.id, req.at ? timestampDate(req.at) : undefined)) };
    },
  };
}
