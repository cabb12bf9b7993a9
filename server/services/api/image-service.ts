import type { ServiceImpl } from "@connectrpc/connect";
import type { ImageService } from "../../../gen/metal/api/v1/image_pb.js";
import { toProtoImage } from "../../convert/image.js";
import type { DbHandle } from "../../db/handle.js";
import { imageRepository as images } from "../../repositories/image-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { validateImageList, validateImageRef } from "../../validate/image.js";

export interface ImageServiceDeps {
  db: DbHandle;
}

/** Everyone with a token may read images and resolve short image ids. */
export function createImageService({ db }: ImageServiceDeps): ServiceImpl<typeof ImageService> {
  return {
    async get(req) {
      validateImageRef("id", req.id);
      // A full id answers that image, expired or not; anything else resolves like allocation does.
      const image = (await images.find(db, req.id)) ?? (await images.resolve(db, req.id));
      return { image: toProtoImage(image) };
    },
    async list(req) {
      validateImageList(req);
      const filter = { os: req.os, feature: req.feature || undefined, classification: req.classification || undefined };
      const page = await images.list(db, filter, pageRequest(req.paging));
      return { images: page.items.map(toProtoImage), nextPageToken: page.nextPageToken };
    },
    async latest(req) {
      validateImageRef("os", req.os, req.feature);
      return { image: toProtoImage(await images.resolve(db, req.os, { feature: req.feature || undefined })) };
    },
  };
}
