import type { ServiceImpl } from "@connectrpc/connect";
import { FilesystemLayoutService } from "../../../gen/metal/api/v1/filesystem_layout_pb.js";
import { toProtoFilesystemLayout } from "../../convert/filesystem-layout.js";
import type { Db } from "../../db/database.js";
import { selectLayout } from "../../domain/filesystem-layout.js";
import { notFound } from "../../errors.js";
import { filesystemLayoutRepository as layouts } from "../../repositories/image-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { validateImageRef } from "../../validate/image.js";
import { lookupImage } from "../image-lookup.js";

export function createFilesystemLayoutService({ db }: { db: Db<any> }): ServiceImpl<typeof FilesystemLayoutService> {
  return {
    async get(req) {
      return { filesystemLayout: toProtoFilesystemLayout(await layouts.get(db, req.id)) };
    },
    async list(req) {
      const page = await layouts.list(db, pageRequest(req.paging));
      return { filesystemLayouts: page.items.map(toProtoFilesystemLayout), nextPageToken: page.nextPageToken };
    },
    async try(req) {
      validateImageRef("image", req.image);
      const image = await lookupImage(db, req.image);
      const chosen = selectLayout(await layouts.all(db), req.size, { os: image.os, version: image.osVersion });
      if (!chosen) throw notFound("filesystem layout for size and image", `${req.size}" and "${image.id}`);
      return { filesystemLayout: toProtoFilesystemLayout(chosen) };
    },
  };
}
