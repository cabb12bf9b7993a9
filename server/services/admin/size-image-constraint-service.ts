import type { ServiceImpl } from "@connectrpc/connect";
import { SizeImageConstraintService } from "../../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { toProtoSizeImageConstraint } from "../../convert/image.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction, type Db } from "../../db/database.js";
import { sizeImageConstraintRepository as constraints } from "../../repositories/image-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { sizeRepository as sizes } from "../../repositories/size-repository.js";
import { validateSizeImageConstraint } from "../../validate/image.js";

export function createAdminSizeImageConstraintService({ db }: { db: Db<any> }): ServiceImpl<typeof SizeImageConstraintService> {
  return {
    async create(req) {
      validateSizeImageConstraint(req);
      const row = await inTransaction(db, async (tx) => {
        await sizes.get(tx, req.size);
        return constraints.create(tx, req.size, req.images);
      });
      return { sizeImageConstraint: toProtoSizeImageConstraint(row) };
    },
    async update(req) {
      validateSizeImageConstraint(req);
      return { sizeImageConstraint: toProtoSizeImageConstraint(await constraints.update(db, req.size, versionOf(req.version), req.images)) };
    },
    async delete(req) {
      return { sizeImageConstraint: toProtoSizeImageConstraint(await constraints.delete(db, req.size)) };
    },
    async get(req) {
      return { sizeImageConstraint: toProtoSizeImageConstraint(await constraints.get(db, req.size)) };
    },
    async list(req) {
      const page = await constraints.list(db, pageRequest(req.paging));
      return { sizeImageConstraints: page.items.map(toProtoSizeImageConstraint), nextPageToken: page.nextPageToken };
    },
  };
}
