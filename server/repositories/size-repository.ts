import { and, arrayContains, eq, inArray, ne, type SQL } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type NewSizeReservationRow, type NewSizeRow, type SizeReservationRow, type SizeRow, sizeReservations, sizes } from "../db/schema/index.js";
import { FOREIGN_KEY_VIOLATION, failedPrecondition, sqlState } from "../errors.js";
import { type PageRequest, toPage } from "./paging.js";
import { deleteById, getById, insertUnique, listPage, lockById, updateVersioned } from "./versioned.js";

export const sizeRepository = {
  get: (db: DbHandle, id: string): Promise<SizeRow> => getById(db, sizes, "size", id),

  /** Reads the size and locks it FOR UPDATE until the transaction ends (a delete's first step). */
  lock: (tx: DbHandle, id: string): Promise<SizeRow> => lockById(tx, sizes, "size", id),

  async list(db: DbHandle, page: PageRequest) {
    return toPage(await listPage(db, sizes, page), page.limit, (r) => r.id);
  },

  /** Every size, for matching hardware at registration. */
  all: (db: DbHandle): Promise<SizeRow[]> => db.select().from(sizes),

  /** All sizes but one, for the overlap check (call under LockKey.sizes). */
  others: (db: DbHandle, exceptId: string): Promise<SizeRow[]> => db.select().from(sizes).where(ne(sizes.id, exceptId)),

  create: (db: DbHandle, row: NewSizeRow): Promise<SizeRow> => insertUnique(db, sizes, "size", row.id, row),

  update: (db: DbHandle, id: string, version: number, patch: Partial<NewSizeRow>): Promise<SizeRow> => updateVersioned(db, sizes, "size", id, version, patch),

  /** Deletes the size; call it after counting its users under `lock` (see usage-repository). */
  async delete(db: DbHandle, id: string): Promise<SizeRow> {
    try {
      return await deleteById(db, sizes, "size", id);
    } catch (err) {
      // Only when the caller skipped the count: the reservations' foreign key still refuses.
      if (sqlState(err) === FOREIGN_KEY_VIOLATION) throw failedPrecondition(`size "${id}" is still used by size reservations; delete them first`);
      throw err;
    }
  },
};

export interface ReservationFilter {
  sizeId?: string;
  project?: string;
  /** Any of these projects (a tenant's scope, see repositories/tenant). */
  projects?: readonly string[];
  partitionId?: string;
}

export const sizeReservationRepository = {
  get: (db: DbHandle, id: string): Promise<SizeReservationRow> => getById(db, sizeReservations, "size reservation", id),

  async list(db: DbHandle, filter: ReservationFilter, page: PageRequest) {
    const where: SQL[] = [];
    if (filter.sizeId !== undefined) where.push(eq(sizeReservations.sizeId, filter.sizeId));
    if (filter.project !== undefined) where.push(eq(sizeReservations.project, filter.project));
    if (filter.projects !== undefined) where.push(inArray(sizeReservations.project, [...filter.projects]));
    if (filter.partitionId !== undefined) where.push(arrayContains(sizeReservations.partitionIds, [filter.partitionId]));
    return toPage(await listPage(db, sizeReservations, page, and(...where)), page.limit, (r) => r.id);
  },

  /** Every reservation of a size that covers a partition: what allocation must respect, all of it (not a page). */
  forSizeIn(db: DbHandle, sizeId: string, partitionId: string): Promise<SizeReservationRow[]> {
    return db
      .select()
      .from(sizeReservations)
      .where(and(eq(sizeReservations.sizeId, sizeId), arrayContains(sizeReservations.partitionIds, [partitionId])));
  },

  async create(db: DbHandle, row: NewSizeReservationRow): Promise<SizeReservationRow> {
    try {
      return await insertUnique(db, sizeReservations, "size reservation", row.id!, row);
    } catch (err) {
      if (sqlState(err) === FOREIGN_KEY_VIOLATION) throw failedPrecondition(`size "${row.sizeId}" was deleted meanwhile`);
      throw err;
    }
  },

  update: (db: DbHandle, id: string, version: number, patch: Partial<NewSizeReservationRow>): Promise<SizeReservationRow> => updateVersioned(db, sizeReservations, "size reservation", id, version, patch),

  delete: (db: DbHandle, id: string): Promise<SizeReservationRow> => deleteById(db, sizeReservations, "size reservation", id),
};

/** The row types callers of this repository name (handlers never import the schema). */
export type { SizeRow } from "../db/schema/index.js";
