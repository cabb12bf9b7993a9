import { and, sql } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import { type IpRow, ips, type NewIpRow } from "../../db/schema/index.js";
import type { ProjectScope } from "../../domain/project-scope.js";
import { ipRepository } from "../ip-repository.js";
import type { PageRequest } from "../paging.js";
import { getById, lockById, updateVersioned } from "../versioned.js";
import { projectIn } from "./scope-sql.js";

/** The IPs of the scope's projects; every other IP reads as one that does not exist. */
export const tenantIpRepository = {
  get: (db: DbHandle, scope: ProjectScope, id: string): Promise<IpRow> => getById(db, ips, "ip", id, projectIn(ips.project, scope)),

  lock: (tx: DbHandle, scope: ProjectScope, id: string): Promise<IpRow> => lockById(tx, ips, "ip", id, projectIn(ips.project, scope)),

  list: (db: DbHandle, scope: ProjectScope, filter: { network?: string }, page: PageRequest) => ipRepository.list(db, { projects: scope.projects, network: filter.network }, page),

  /** Reads and locks the scope's IP holding `address`; undefined when the scope has no such IP. */
  async lockByAddress(tx: DbHandle, scope: ProjectScope, address: string): Promise<IpRow | undefined> {
    const [row] = await tx
      .select()
      .from(ips)
      .where(and(sql`${ips.ip} = ${address}::inet`, projectIn(ips.project, scope)))
      .for("update");
    return row;
  },

  update: (db: DbHandle, scope: ProjectScope, id: string, version: number, patch: Partial<NewIpRow>): Promise<IpRow> => updateVersioned(db, ips, "ip", id, version, patch, projectIn(ips.project, scope)),
};
