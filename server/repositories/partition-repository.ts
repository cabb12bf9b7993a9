import { eq, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type NewPartitionRow, type PartitionRow, partitions } from "../db/schema/index.js";
import { notFound } from "../errors.js";
import { type PageRequest, toPage } from "./paging.js";
import { deleteById, insertUnique, listPage, lockById, updateVersioned } from "./versioned.js";

const KIND = "partition";

/**
 * Get by id is the hottest read (every partition lookup of every client):
 * its query is built once per handle and runs as a named prepared statement,
 * not rebuilt by drizzle (and parsed by PostgreSQL) on every call.
 */
const getStatements = new WeakMap<DbHandle, ReturnType<typeof prepareGet>>();
const prepareGet = (db: DbHandle) =>
  db
    .select()
    .from(partitions)
    .where(eq(partitions.id, sql.placeholder("id")))
    .prepare("partition_get_by_id");
function preparedGet(db: DbHandle) {
  let statement = getStatements.get(db);
  if (!statement) getStatements.set(db, (statement = prepareGet(db)));
  return statement;
}

/** Partitions in the metal-api database. */
export const partitionRepository = {
  async get(db: DbHandle, id: string): Promise<PartitionRow> {
    const rows = await preparedGet(db).execute({ id });
    if (rows.length === 0) throw notFound(KIND, id);
    return rows[0]!;
  },

  /** Reads the partition and locks it FOR UPDATE until the transaction ends (a delete's first step). */
  lock: (tx: DbHandle, id: string): Promise<PartitionRow> => lockById(tx, partitions, KIND, id),

  async list(db: DbHandle, page: PageRequest) {
    return toPage(await listPage(db, partitions, page), page.limit, (r) => r.id);
  },

  create: (db: DbHandle, row: NewPartitionRow): Promise<PartitionRow> => insertUnique(db, partitions, KIND, row.id, row),

  update: (db: DbHandle, id: string, version: number, patch: Partial<NewPartitionRow>): Promise<PartitionRow> => updateVersioned(db, partitions, KIND, id, version, patch),

  delete: (db: DbHandle, id: string): Promise<PartitionRow> => deleteById(db, partitions, KIND, id),
};
