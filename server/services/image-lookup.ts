import { resolvable } from "../convert/image.js";
import type { Db } from "../db/database.js";
import type { ImageRow } from "../db/schema/index.js";
import { parseImageQuery, resolveImage } from "../domain/image-version.js";
import { imageRefusal } from "../domain/size-image-constraint.js";
import { failedPrecondition, notFound } from "../errors.js";
import { imageRepository as images, sizeImageConstraintRepository as constraints } from "../repositories/image-repository.js";

/**
 * The image a reference names: the exact id if it exists, else the newest
 * unexpired image it is a prefix of ("debian-12" -> newest debian 12.x.y).
 * Used by the image services now and by allocation and reinstall later.
 */
export async function lookupImage(db: Db<any>, ref: string, feature?: number): Promise<ImageRow> {
  const exact = await images.find(db, ref);
  if (exact && (feature === undefined || exact.features.includes(feature))) return exact;
  const candidates = (await images.ofOs(db, parseImageQuery(ref).os)).map(resolvable);
  const found = resolveImage(candidates, ref, { feature });
  if (!found) throw notFound("image", ref);
  return found.row;
}

/** Refuses (FailedPrecondition) an image the size's constraint does not allow. */
export async function assertImageAllowed(db: Db<any>, sizeId: string, image: ImageRow): Promise<void> {
  const c = await constraints.find(db, sizeId);
  const why = c ? imageRefusal(sizeId, c.images, { id: image.id, os: image.os, version: image.osVersion }) : undefined;
  if (why) throw failedPrecondition(why);
}
