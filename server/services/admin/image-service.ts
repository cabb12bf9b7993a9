import type { ServiceImpl } from "@connectrpc/connect";
import type { ImageService } from "../../../gen/metal/admin/v1/image_pb.js";
import { imagePatchFromUpdate, imageRowFromCreate, toProtoImage } from "../../convert/image.js";
import { versionOf } from "../../convert/meta.js";
import type { DbHandle } from "../../db/handle.js";
import { imageRepository as images } from "../../repositories/image-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { usageRepository as usage } from "../../repositories/usage-repository.js";
import { deleteUnlessUsed } from "../../usecases/shared/delete-unless-used.js";
import { validateImageCreate, validateImageId, validateImageUpdate } from "../../validate/image.js";

export interface AdminImageServiceDeps {
  db: DbHandle;
}

/**
 * Operators offer images. Unlike the original, creating an image does not
 * probe its URL with HTTP HEAD (see validateImageCreate): the control plane
 * should not depend on the image server being reachable when an image is registered.
 */
export function createAdminImageService({ db }: AdminImageServiceDeps): ServiceImpl<typeof ImageService> {
  return {
    async create(req) {
      const name = validateImageCreate(req);
      return { image: toProtoImage(await images.create(db, imageRowFromCreate(req, name))) };
    },
    async update(req) {
      validateImageUpdate(req);
      return { image: toProtoImage(await images.update(db, req.id, versionOf(req.version), imagePatchFromUpdate(req))) };
    },
    async delete(req) {
      validateImageId("id", req.id);
      // Refused while allocations use it (a reinstall may still fall back to it).
      const row = await deleteUnlessUsed(db, {
        what: `image "${req.id}"`,
        lock: (tx) => images.lock(tx, req.id),
        users: (tx) => usage.ofImage(tx, req.id),
        remove: (tx) => images.delete(tx, req.id),
        hint: "free or reinstall them first",
      });
      return { image: toProtoImage(row) };
    },
    async list(req) {
      const page = await images.list(db, {}, pageRequest(req.paging));
      return { images: page.items.map(toProtoImage), nextPageToken: page.nextPageToken };
    },
  };
}
