import type { DbHandle } from "../db/handle.js";
import { partitions, type NewPartitionRow, type PartitionRow } from "../db/schema/index.js";
import { toPage, type PageRequest } from "./paging.js";
import { deleteById, getById, insertUnique, listPage, lockById, updateVersioned } from "./versioned.js";

const KIND = "partition";

/** Partitions in the metal-api database. */
export const partitionRepository = {
  get: (db: DbHandle, id: string): Promise<PartitionRow> => getById(db, partitions, KIND, id),

  /** Reads the partition and locks it FOR UPDATE until the transaction ends (a delete's first step). */
  lock: (tx: DbHandle, id: string): Promise<PartitionRow> => lockById(tx, partitions, KIND, id),

  async list(db: DbHandle, page: PageRequest) {
    return toPage(await listPage(db, partitions, page), page.limit, (r) => r.id);
  },

  create: (db: DbHandle, row: NewPartitionRow): Promise<PartitionRow> => insertUnique(db, partitions, KIND, row.id, row),

  update: (db: DbHandle, id: string, version: number, patch: Partial<NewPartitionRow>): Promise<PartitionRow> =>
    updateVersioned(db, partitions, KIND, id, version, patch),

  delete: (db: DbHandle, id: string): Promise<PartitionRow> => deleteById(db, partitions, KIND, id),
};
