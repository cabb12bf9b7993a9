import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type IpRow, ips, type NewIpRow } from "../db/schema/index.js";
import { type PageRequest, toPage } from "./paging.js";
import { getById, listPage, lockById, updateVersioned } from "./versioned.js";

export interface IpFilter {
  project?: string;
  /** Any of these projects (a tenant's scope, see repositories/tenant). */
  projects?: readonly string[];
  network?: string;
}

export const ipRepository = {
  get: (db: DbHandle, id: string): Promise<IpRow> => getById(db, ips, "ip", id),

  lock: (tx: DbHandle, id: string): Promise<IpRow> => lockById(tx, ips, "ip", id),

  async list(db: DbHandle, filter: IpFilter, page: PageRequest) {
    const where: SQL[] = [];
    if (filter.project !== undefined) where.push(eq(ips.project, filter.project));
    if (filter.projects !== undefined) where.push(inArray(ips.project, [...filter.projects]));
    if (filter.network !== undefined) where.push(eq(ips.networkId, filter.network));
    return toPage(await listPage(db, ips, page, and(...where)), page.limit, (r) => r.id);
  },

  /** Reads and locks the IP row holding `address`; undefined when no such IP is allocated. */
  async lockByAddress(tx: DbHandle, address: string): Promise<IpRow | undefined> {
    const [row] = await tx.select().from(ips).where(sql`${ips.ip} = ${address}::inet`).for("update");
    return row;
  },

  async attach(tx: DbHandle, ids: readonly string[], machineId: string): Promise<void> {
    if (ids.length === 0) return;
    await tx
      .update(ips)
      .set({ machineId, version: sql`${ips.version} + 1`, updatedAt: sql`now()` })
      .where(inArray(ips.id, [...ids]));
  },

  update: (db: DbHandle, id: string, version: number, patch: Partial<NewIpRow>): Promise<IpRow> => updateVersioned(db, ips, "ip", id, version, patch),
};

/** The row types callers of this repository name (handlers never import the schema). */
export type { IpRow, NewIpRow } from "../db/schema/index.js";
