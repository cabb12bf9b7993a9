import type { ServiceImpl } from "@connectrpc/connect";
import { ImageService } from "../../../gen/metal/api/v1/image_pb.js";
import { toProtoImage } from "../../convert/image.js";
import type { Db } from "../../db/database.js";
import { imageRepository as images } from "../../repositories/image-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { validateImageRef } from "../../validate/image.js";
import { lookupImage } from "../image-lookup.js";

export function createImageService({ db }: { db: Db<any> }): ServiceImpl<typeof ImageService> {
  return {
    async get(req) {
      validateImageRef("id", req.id);
      return { image: toProtoImage(await lookupImage(db, req.id)) };
    },
    async list(req) {
      const filter = { os: req.os, feature: req.feature || undefined, classification: req.classification || undefined };
      const page = await images.list(db, filter, pageRequest(req.paging));
      return { images: page.items.map(toProtoImage), nextPageToken: page.nextPageToken };
    },
    async latest(req) {
      validateImageRef("os", req.os);
      return { image: toProtoImage(await lookupImage(db, req.os, req.feature || undefined)) };
    },
  };
}
