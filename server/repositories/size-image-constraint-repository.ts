import { eq } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type SizeImageConstraintRow, sizeImageConstraints } from "../db/schema/index.js";
import { type PageRequest, toPage } from "./paging.js";
import { deleteById, getById, insertUnique, listPage, updateVersioned } from "./versioned.js";

const KIND = "size image constraint";

/** Size-image constraints, one per size, keyed by the size id. */
export const sizeImageConstraintRepository = {
  get: (db: DbHandle, size: string): Promise<SizeImageConstraintRow> => getById(db, sizeImageConstraints, KIND, size),

  /** The constraint of a size, or undefined when the size has none (every image allowed). */
  async find(db: DbHandle, size: string): Promise<SizeImageConstraintRow | undefined> {
    return (await db.select().from(sizeImageConstraints).where(eq(sizeImageConstraints.id, size)))[0];
  },

  async list(db: DbHandle, page: PageRequest) {
    return toPage(await listPage(db, sizeImageConstraints, page), page.limit, (r) => r.id);
  },

  create: (db: DbHandle, size: string, images: Record<string, string>): Promise<SizeImageConstraintRow> => insertUnique(db, sizeImageConstraints, KIND, size, { id: size, images }),

  update: (db: DbHandle, size: string, version: number, images: Record<string, string>): Promise<SizeImageConstraintRow> => updateVersioned(db, sizeImageConstraints, KIND, size, version, { images }),

  delete: (db: DbHandle, size: string): Promise<SizeImageConstraintRow> => deleteById(db, sizeImageConstraints, KIND, size),
};
