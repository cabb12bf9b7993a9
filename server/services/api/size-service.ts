import type { ServiceImpl } from "@connectrpc/connect";
import type { SizeService } from "../../../gen/metal/api/v1/size_pb.js";
import { toProtoSize } from "../../convert/size.js";
import type { DbHandle } from "../../db/handle.js";
import { pageRequest } from "../../repositories/paging.js";
import { sizeRepository as sizes } from "../../repositories/size-repository.js";

export function createSizeService({ db }: { db: DbHandle }): ServiceImpl<typeof SizeService> {
  return {
    async get(req) {
      return { size: toProtoSize(await sizes.get(db, req.id)) };
    },
    async list(req) {
      const page = await sizes.list(db, pageRequest(req.paging));
      return { sizes: page.items.map(toProtoSize), nextPageToken: page.nextPageToken };
    },
  };
}
