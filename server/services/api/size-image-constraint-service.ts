import type { ServiceImpl } from "@connectrpc/connect";
import { SizeImageConstraintService } from "../../../gen/metal/api/v1/size_image_constraint_pb.js";
import type { Db } from "../../db/database.js";
import { sizeRepository as sizes } from "../../repositories/size-repository.js";
import { validateImageRef } from "../../validate/image.js";
import { assertImageAllowed, lookupImage } from "../image-lookup.js";

/** Resolves the image and checks it against the size's constraint; returns the full image id. */
export async function tryImageOnSize(db: Db<any>, sizeId: string, imageRef: string): Promise<string> {
  await sizes.get(db, sizeId);
  const image = await lookupImage(db, imageRef);
  await assertImageAllowed(db, sizeId, image);
  return image.id;
}

export function createSizeImageConstraintService({ db }: { db: Db<any> }): ServiceImpl<typeof SizeImageConstraintService> {
  return {
    async try(req) {
      validateImageRef("image", req.image);
      return { image: await tryImageOnSize(db, req.size, req.image) };
    },
  };
}
