import type { DbHandle } from "../../db/handle.js";
import type { ImageRow } from "../../db/schema/index.js";
import { imageRefusal } from "../../domain/size-image-constraint.js";
import { failedPrecondition } from "../../errors.js";
import { imageRepository as images } from "../../repositories/image-repository.js";
import { sizeImageConstraintRepository as constraints } from "../../repositories/size-image-constraint-repository.js";

/**
 * Refuses (FailedPrecondition, saying why) an image the size's constraint does
 * not allow; returns whether the size constrains the image's OS at all.
 * Allocation calls this with the resolved image, in its transaction.
 */
export async function assertImageAllowedOnSize(db: DbHandle, sizeId: string, image: ImageRow): Promise<{ constrained: boolean }> {
  const c = await constraints.find(db, sizeId);
  if (!c || c.images[image.os] === undefined) return { constrained: false };
  const why = imageRefusal(sizeId, c.images, { id: image.id, os: image.os, version: image.osVersion });
  if (why) throw failedPrecondition(why);
  return { constrained: true };
}

/**
 * Resolves an image reference (unexpired images, as allocation does) and checks
 * it against the size's constraint. The size is an id only: a size without a
 * constraint allows every image.
 */
export async function tryImageOnSize(db: DbHandle, sizeId: string, imageRef: string): Promise<{ image: string; constrained: boolean }> {
  const image = await images.resolve(db, imageRef);
  const { constrained } = await assertImageAllowedOnSize(db, sizeId, image);
  return { image: image.id, constrained };
}
