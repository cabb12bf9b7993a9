import { and, asc, ne, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type FilesystemLayoutRow, filesystemLayouts, type NewFilesystemLayoutRow } from "../db/schema/index.js";
import { LockKey, lockForTransaction } from "./locks.js";
import { type PageRequest, toPage } from "./paging.js";
import { deleteById, getById, insertUnique, listPage, lockById, updateVersioned } from "./versioned.js";

const KIND = "filesystem layout";
const sizesOf = sql`${filesystemLayouts.spec} -> 'constraints' -> 'sizes'`;

/** Filesystem layouts; the layout itself is one JSON document (`spec`). */
export const filesystemLayoutRepository = {
  get: (db: DbHandle, id: string): Promise<FilesystemLayoutRow> => getById(db, filesystemLayouts, KIND, id),

  /** Reads the layout and locks it FOR UPDATE until the transaction ends (a delete's first step). */
  lock: (tx: DbHandle, id: string): Promise<FilesystemLayoutRow> => lockById(tx, filesystemLayouts, KIND, id),

  async list(db: DbHandle, page: PageRequest) {
    return toPage(await listPage(db, filesystemLayouts, page), page.limit, (r) => r.id);
  },

  /** Every layout, ordered by id (prefer `forSize` for selection: it reads only the candidates). */
  all: (db: DbHandle): Promise<FilesystemLayoutRow[]> => db.select().from(filesystemLayouts).orderBy(asc(filesystemLayouts.id)),

  /** The layouts naming a size in their constraints, ordered by id: the candidates of selection. */
  forSize: (db: DbHandle, size: string): Promise<FilesystemLayoutRow[]> =>
    db
      .select()
      .from(filesystemLayouts)
      .where(sql`${sizesOf} @> ${JSON.stringify([size])}::jsonb`)
      .orderBy(asc(filesystemLayouts.id)),

  /** The layouts other than `exceptId` sharing a size with `sizes`, ordered by id: the candidates of an overlap. */
  sharingSizes: (db: DbHandle, sizes: string[], exceptId: string): Promise<FilesystemLayoutRow[]> =>
    sizes.length === 0
      ? Promise.resolve([])
      : db
          .select()
          .from(filesystemLayouts)
          .where(
            and(
              ne(filesystemLayouts.id, exceptId),
              sql`${sizesOf} ?| array[${sql.join(
                sizes.map((s) => sql`${s}`),
                sql`, `,
              )}]::text[]`,
            ),
          )
          .orderBy(asc(filesystemLayouts.id)),

  /**
   * Takes the transaction-scoped lock that serialises every write of layouts
   * with its overlap check: two parallel creates cannot both see "no overlap".
   */
  lockForWrite: (tx: DbHandle): Promise<void> => lockForTransaction(tx, LockKey.filesystemLayouts),

  create: (db: DbHandle, row: NewFilesystemLayoutRow): Promise<FilesystemLayoutRow> => insertUnique(db, filesystemLayouts, KIND, row.id, row),

  update: (db: DbHandle, id: string, version: number, patch: Partial<NewFilesystemLayoutRow>): Promise<FilesystemLayoutRow> => updateVersioned(db, filesystemLayouts, KIND, id, version, patch),

  delete: (db: DbHandle, id: string): Promise<FilesystemLayoutRow> => deleteById(db, filesystemLayouts, KIND, id),
};
