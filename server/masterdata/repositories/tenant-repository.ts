import { eq } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import type { PageRequest } from "../../repositories/paging.js";
import { tenants } from "../db/schema/index.js";
import { createEntityStore, type MetaFilter } from "./entity-store.js";

export interface TenantFilter extends MetaFilter {
  id?: string;
  name?: string;
}

const store = createEntityStore(tenants, { kind: "Tenant", label: "tenant", neverReuseIds: true });

/** Tenants in the masterdata database. */
export const tenantRepository = {
  ...store,

  find: (db: DbHandle, f: TenantFilter, page: PageRequest) => store.page(db, [f.id !== undefined ? eq(tenants.id, f.id) : undefined, f.name !== undefined ? eq(tenants.name, f.name) : undefined], f, page),
};
