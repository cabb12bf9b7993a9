import { create } from "@bufbuild/protobuf";
import { type Tenant, TenantSchema } from "../../../gen/masterdata/v1/tenant_pb.js";
import type { NewTenantRow, TenantRow } from "../db/schema/index.js";
import { metaColumnsFrom, newId, toMeta } from "./meta.js";
import { fromQuotaSet, toQuotaSet } from "./quota.js";

const TENANT_KIND = "Tenant";

export function toTenant(row: TenantRow): Tenant {
  return create(TenantSchema, {
    meta: toMeta(TENANT_KIND, row),
    name: row.name,
    description: row.description,
    defaultQuotas: toQuotaSet(row.defaultQuotas),
    quotas: toQuotaSet(row.quotas),
  });
}

/** The columns an update replaces: everything the client owns. */
export function tenantPatchFrom(t: Tenant): Omit<NewTenantRow, "id"> {
  return {
    ...metaColumnsFrom(t.meta),
    name: t.name,
    description: t.description,
    defaultQuotas: fromQuotaSet(t.defaultQuotas),
    quotas: fromQuotaSet(t.quotas),
  };
}

export function tenantRowFromCreate(t: Tenant): NewTenantRow {
  return { id: newId(t.meta), ...tenantPatchFrom(t) };
}
