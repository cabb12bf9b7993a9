import { count, eq } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import type { PageRequest } from "../../repositories/paging.js";
import { projects } from "../db/schema/index.js";
import { createEntityStore, type MetaFilter } from "./entity-store.js";

export interface ProjectFilter extends MetaFilter {
  id?: string;
  name?: string;
  description?: string;
  tenantId?: string;
}

const store = createEntityStore(projects, { kind: "Project", label: "project", neverReuseIds: true });

/** Projects in the masterdata database. */
export const projectRepository = {
  ...store,

  find: (db: DbHandle, f: ProjectFilter, page: PageRequest) =>
    store.page(
      db,
      [
        f.id !== undefined ? eq(projects.id, f.id) : undefined,
        f.name !== undefined ? eq(projects.name, f.name) : undefined,
        f.description !== undefined ? eq(projects.description, f.description) : undefined,
        f.tenantId !== undefined ? eq(projects.tenantId, f.tenantId) : undefined,
      ],
      f,
      page,
    ),

  /** How many projects the tenant owns; exact only while the caller holds the tenant's row lock. */
  async countOfTenant(tx: DbHandle, tenantId: string): Promise<number> {
    const [row] = await tx.select({ n: count() }).from(projects).where(eq(projects.tenantId, tenantId));
    return row?.n ?? 0;
  },
};
