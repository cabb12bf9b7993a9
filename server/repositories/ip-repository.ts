import { and, eq, type SQL } from "drizzle-orm";
import type { Db } from "../db/database.js";
import { ips, type IpRow, type NewIpRow } from "../db/schema/index.js";
import { notFound } from "../errors.js";
import { toPage, type PageRequest } from "./paging.js";
import { listPage, updateVersioned } from "./versioned.js";

export interface IpFilter {
  project?: string;
  network?: string;
}

export const ipRepository = {
  async get(db: Db<any>, id: string): Promise<IpRow> {
    const rows = await db.select().from(ips).where(eq(ips.id, id));
    if (rows.length === 0) throw notFound("ip", id);
    return rows[0]!;
  },

  async lock(tx: Db<any>, id: string): Promise<IpRow> {
    const rows = await tx.select().from(ips).where(eq(ips.id, id)).for("update");
    if (rows.length === 0) throw notFound("ip", id);
    return rows[0]!;
  },

  async list(db: Db<any>, filter: IpFilter, page: PageRequest) {
    const where: SQL[] = [];
    if (filter.project !== undefined) where.push(eq(ips.project, filter.project));
    if (filter.network !== undefined) where.push(eq(ips.networkId, filter.network));
    return toPage(await listPage(db, ips, page, and(...where)), page.limit, (r) => r.id);
  },

  update: (db: Db<any>, id: string, version: number, patch: Partial<NewIpRow>): Promise<IpRow> => updateVersioned(db, ips, "ip", id, version, patch),
};
