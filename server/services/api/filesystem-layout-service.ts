import type { ServiceImpl } from "@connectrpc/connect";
import type { FilesystemLayoutService } from "../../../gen/metal/api/v1/filesystem_layout_pb.js";
import { toProtoFilesystemLayout } from "../../convert/filesystem-layout.js";
import type { DbHandle } from "../../db/handle.js";
import { filesystemLayoutRepository as layouts } from "../../repositories/filesystem-layout-repository.js";
import { imageRepository as images } from "../../repositories/image-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { layoutFor } from "../../usecases/images/layout-choice.js";
import { validateSizeAndImage } from "../../validate/size-image-constraint.js";
import { validator } from "../../validate/validator.js";

export interface FilesystemLayoutServiceDeps {
  db: DbHandle;
}

/** Everyone with a token may read layouts and ask which one a machine would get. */
export function createFilesystemLayoutService({ db }: FilesystemLayoutServiceDeps): ServiceImpl<typeof FilesystemLayoutService> {
  return {
    async get(req) {
      validator().id("id", req.id).check();
      return { filesystemLayout: toProtoFilesystemLayout(await layouts.get(db, req.id)) };
    },
    async list(req) {
      const page = await layouts.list(db, pageRequest(req.paging));
      return { filesystemLayouts: page.items.map(toProtoFilesystemLayout), nextPageToken: page.nextPageToken };
    },
    async try(req) {
      validateSizeAndImage(req);
      const image = await images.resolve(db, req.image);
      return { filesystemLayout: toProtoFilesystemLayout(await layoutFor(db, req.size, image)) };
    },
  };
}
