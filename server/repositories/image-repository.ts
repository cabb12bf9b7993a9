import { and, arrayContains, eq, ne, type SQL } from "drizzle-orm";
import type { Db } from "../db/database.js";
import { filesystemLayouts, images, sizeImageConstraints, type FilesystemLayoutRow, type ImageRow, type NewFilesystemLayoutRow, type NewImageRow, type SizeImageConstraintRow } from "../db/schema/index.js";
import { toPage, type PageRequest } from "./paging.js";
import { deleteById, getById, insertUnique, listPage, updateVersioned } from "./versioned.js";

export interface ImageFilter {
  os?: string;
  feature?: number;
  classification?: number;
}

export const imageRepository = {
  get: (db: Db<any>, id: string): Promise<ImageRow> => getById(db, images, "image", id),

  async find(db: Db<any>, id: string): Promise<ImageRow | undefined> {
    return (await db.select().from(images).where(eq(images.id, id)))[0];
  },

  /** Every image of one OS: the candidates a short reference resolves among. */
  ofOs: (db: Db<any>, os: string): Promise<ImageRow[]> => db.select().from(images).where(eq(images.os, os)),

  async list(db: Db<any>, filter: ImageFilter, page: PageRequest) {
    const where: SQL[] = [];
    if (filter.os !== undefined) where.push(eq(images.os, filter.os));
    if (filter.feature !== undefined) where.push(arrayContains(images.features, [filter.feature]));
    if (filter.classification !== undefined) where.push(eq(images.classification, filter.classification));
    return toPage(await listPage(db, images, page, and(...where)), page.limit, (r) => r.id);
  },

  create: (db: Db<any>, row: NewImageRow): Promise<ImageRow> => insertUnique(db, images, "image", row.id, row),
  update: (db: Db<any>, id: string, version: number, patch: Partial<NewImageRow>): Promise<ImageRow> => updateVersioned(db, images, "image", id, version, patch),
  delete: (db: Db<any>, id: string): Promise<ImageRow> => deleteById(db, images, "image", id),
};

export const sizeImageConstraintRepository = {
  get: (db: Db<any>, size: string): Promise<SizeImageConstraintRow> => getById(db, sizeImageConstraints, "size image constraint", size),
  async find(db: Db<any>, size: string): Promise<SizeImageConstraintRow | undefined> {
    return (await db.select().from(sizeImageConstraints).where(eq(sizeImageConstraints.id, size)))[0];
  },
  async list(db: Db<any>, page: PageRequest) {
    return toPage(await listPage(db, sizeImageConstraints, page), page.limit, (r) => r.id);
  },
  create: (db: Db<any>, size: string, imagesByOs: Record<string, string>): Promise<SizeImageConstraintRow> =>
    insertUnique(db, sizeImageConstraints, "size image constraint", size, { id: size, images: imagesByOs }),
  update: (db: Db<any>, size: string, version: number, imagesByOs: Record<string, string>): Promise<SizeImageConstraintRow> =>
    updateVersioned(db, sizeImageConstraints, "size image constraint", size, version, { images: imagesByOs }),
  delete: (db: Db<any>, size: string): Promise<SizeImageConstraintRow> => deleteById(db, sizeImageConstraints, "size image constraint", size),
};

export const filesystemLayoutRepository = {
  get: (db: Db<any>, id: string): Promise<FilesystemLayoutRow> => getById(db, filesystemLayouts, "filesystem layout", id),
  async list(db: Db<any>, page: PageRequest) {
    return toPage(await listPage(db, filesystemLayouts, page), page.limit, (r) => r.id);
  },
  /** All layouts, ordered by id: for selection and the overlap check (call under LockKey.filesystemLayouts). */
  all: (db: Db<any>): Promise<FilesystemLayoutRow[]> => db.select().from(filesystemLayouts).orderBy(filesystemLayouts.id),
  others: (db: Db<any>, id: string): Promise<FilesystemLayoutRow[]> => db.select().from(filesystemLayouts).where(ne(filesystemLayouts.id, id)),
  create: (db: Db<any>, row: NewFilesystemLayoutRow): Promise<FilesystemLayoutRow> => insertUnique(db, filesystemLayouts, "filesystem layout", row.id, row),
  update: (db: Db<any>, id: string, version: number, patch: Partial<NewFilesystemLayoutRow>): Promise<FilesystemLayoutRow> =>
    updateVersioned(db, filesystemLayouts, "filesystem layout", id, version, patch),
  delete: (db: Db<any>, id: string): Promise<FilesystemLayoutRow> => deleteById(db, filesystemLayouts, "filesystem layout", id),
};
