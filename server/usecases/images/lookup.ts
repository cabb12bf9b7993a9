import type { DbHandle } from "../../db/handle.js";
import type { ImageRow } from "../../db/schema/index.js";
import { imageRepository as images } from "../../repositories/image-repository.js";
import { assertImageAllowedOnSize } from "./size-constraint.js";

/**
 * The image a machine allocation (or reinstall) names: the exact id if it
 * exists (and has the feature, if one is asked for), else the newest unexpired
 * image the reference resolves to ("debian-12" -> newest 12.x.y); NotFound when
 * there is none. See `imageRepository.resolve` for the rules.
 */
export async function lookupImage(db: DbHandle, ref: string, feature?: number): Promise<ImageRow> {
  const exact = await images.find(db, ref);
  if (exact && (feature === undefined || exact.features.includes(feature))) return exact;
  return images.resolve(db, ref, { feature });
}

/** Refuses (FailedPrecondition, saying why) an image the size's constraint does not allow. */
export async function assertImageAllowed(db: DbHandle, sizeId: string, image: ImageRow): Promise<void> {
  await assertImageAllowedOnSize(db, sizeId, image);
}
