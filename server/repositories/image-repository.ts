import { and, arrayContains, eq, inArray, type SQL } from "drizzle-orm";
import { resolvable } from "../convert/image.js";
import type { DbHandle } from "../db/handle.js";
import { type ImageRow, images, type NewImageRow } from "../db/schema/index.js";
import { candidateOses, type ResolveOptions, resolveImage } from "../domain/image-version.js";
import { alreadyExists, notFound, sqlState, taken, UNIQUE_VIOLATION } from "../errors.js";
import { type PageRequest, toPage } from "./paging.js";
import { deleteById, getById, listPage, lockById, updateVersioned } from "./versioned.js";

const KIND = "image";
const VERSION_INDEX = "images_os_version_key";

/** The name of the constraint a database error names, whichever driver or wrapper threw it. */
function violatedConstraint(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const c = (e as { constraint?: unknown }).constraint;
    if (typeof c === "string") return c;
  }
  return undefined;
}

export interface ImageFilter {
  os?: string;
  feature?: number;
  classification?: number;
}

/** Images in the metal-api database; every method takes the handle (pool or transaction) to use. */
export const imageRepository = {
  get: (db: DbHandle, id: string): Promise<ImageRow> => getById(db, images, KIND, id),

  /** Reads the image and locks it FOR UPDATE until the transaction ends (a delete's first step). */
  lock: (tx: DbHandle, id: string): Promise<ImageRow> => lockById(tx, images, KIND, id),

  async find(db: DbHandle, id: string): Promise<ImageRow | undefined> {
    return (await db.select().from(images).where(eq(images.id, id)))[0];
  },

  /** Every image of these OSes: the candidates a reference resolves among. */
  ofOses: (db: DbHandle, oses: string[]): Promise<ImageRow[]> => (oses.length === 0 ? Promise.resolve([]) : db.select().from(images).where(inArray(images.os, oses))),

  async list(db: DbHandle, filter: ImageFilter, page: PageRequest) {
    const where: SQL[] = [];
    if (filter.os !== undefined) where.push(eq(images.os, filter.os));
    if (filter.feature !== undefined) where.push(arrayContains(images.features, [filter.feature]));
    if (filter.classification !== undefined) where.push(eq(images.classification, filter.classification));
    return toPage(await listPage(db, images, page, where.length > 0 ? and(...where) : undefined), page.limit, (r) => r.id);
  },

  async create(db: DbHandle, row: NewImageRow): Promise<ImageRow> {
    try {
      return (await db.insert(images).values(row).returning())[0]!;
    } catch (err) {
      if (sqlState(err) !== UNIQUE_VIOLATION) throw err;
      if (violatedConstraint(err) === VERSION_INDEX) {
        throw taken(`image "${row.id}": ${row.os} already has an image of version ${row.versionKey} (leading zeros do not make a different version)`);
      }
      throw alreadyExists(KIND, row.id);
    }
  },

  update: (db: DbHandle, id: string, version: number, patch: Partial<NewImageRow>): Promise<ImageRow> => updateVersioned(db, images, KIND, id, version, patch),

  delete: (db: DbHandle, id: string): Promise<ImageRow> => deleteById(db, images, KIND, id),

  /**
   * The image a reference names (see `resolveImage`): "debian" -> newest
   * debian, "debian-12" -> newest 12.x.y, "debian-12.0" -> newest 12.0.y, a
   * full id -> that version. Expired images are skipped unless asked for;
   * NotFound when nothing matches. Allocation and reinstall resolve with this.
   */
  async resolve(db: DbHandle, ref: string, opts: ResolveOptions = {}): Promise<ImageRow> {
    const candidates = (await imageRepository.ofOses(db, candidateOses(ref))).map(resolvable);
    const found = resolveImage(candidates, ref, opts);
    if (!found) throw notFound(KIND, ref);
    return found.row;
  },
};

export { filesystemLayoutRepository } from "./filesystem-layout-repository.js";
// Kept for callers written before the repositories were split per entity (machine allocation).
export { sizeImageConstraintRepository } from "./size-image-constraint-repository.js";
