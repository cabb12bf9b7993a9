import { and, eq, sql } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import { type MachineEventsRow, type MachineRow, machineEvents, machines, type StoredAllocation } from "../../db/schema/index.js";
import type { ProjectScope } from "../../domain/project-scope.js";
import { notFound } from "../../errors.js";
import { machineRepository } from "../machine-repository.js";
import type { PageRequest } from "../paging.js";
import { lockById } from "../versioned.js";
import { projectIn } from "./scope-sql.js";

export type AllocatedMachineRow = MachineRow & { allocation: StoredAllocation };

/**
 * The machines a tenant call may see and change: those allocated to a project
 * of its scope. The scope is in every query, so another project's machine and
 * a machine that does not exist give the same NotFound.
 */
export const tenantMachineRepository = {
  async get(db: DbHandle, scope: ProjectScope, id: string): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }> {
    const rows = await db
      .select()
      .from(machines)
      .leftJoin(machineEvents, eq(machineEvents.machineId, machines.id))
      .where(and(eq(machines.id, id), projectIn(machines.project, scope)));
    if (!rows[0]) throw notFound("machine", id);
    return { machine: rows[0].machines, events: rows[0].machine_events ?? undefined };
  },

  list: (db: DbHandle, scope: ProjectScope, page: PageRequest) => machineRepository.list(db, { projects: scope.projects }, page),

  /** The allocated machine, locked until the transaction ends. */
  async lockAllocated(tx: DbHandle, scope: ProjectScope, id: string): Promise<AllocatedMachineRow> {
    const m = await lockById(tx, machines, "machine", id, and(projectIn(machines.project, scope), sql`${machines.allocation} is not null`));
    return m as AllocatedMachineRow;
  },
};
