import type { DbHandle } from "../../db/handle.js";
import { type SizeReservationRow, sizeReservations } from "../../db/schema/index.js";
import type { ProjectScope } from "../../domain/project-scope.js";
import type { PageRequest } from "../paging.js";
import { sizeReservationRepository } from "../size-repository.js";
import { getById } from "../versioned.js";
import { projectIn } from "./scope-sql.js";

/** The size reservations of the scope's projects (operators make them; tenants only read). */
export const tenantSizeReservationRepository = {
  get: (db: DbHandle, scope: ProjectScope, id: string): Promise<SizeReservationRow> => getById(db, sizeReservations, "size reservation", id, projectIn(sizeReservations.project, scope)),

  list: (db: DbHandle, scope: ProjectScope, page: PageRequest) => sizeReservationRepository.list(db, { projects: scope.projects }, page),
};
