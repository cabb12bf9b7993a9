import type { ServiceImpl } from "@connectrpc/connect";
import type { SizeImageConstraintService } from "../../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { versionOf } from "../../convert/meta.js";
import { toProtoSizeImageConstraint } from "../../convert/size-image-constraint.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { pageRequest } from "../../repositories/paging.js";
import { sizeImageConstraintRepository as constraints } from "../../repositories/size-image-constraint-repository.js";
import { referenceHolds as holds } from "../../repositories/usage-repository.js";
import { tryImageOnSize } from "../../usecases/images/size-constraint.js";
import { validateSizeAndImage, validateSizeId, validateSizeImageConstraintCreate, validateSizeImageConstraintUpdate } from "../../validate/size-image-constraint.js";

export interface AdminSizeImageConstraintServiceDeps {
  db: DbHandle;
}

/**
 * Operators limit the image versions a size may run. Sizes are named by id
 * only: a constraint may be written before its size exists, but a size is not
 * deleted while its constraint is there (see the size delete).
 */
export function createAdminSizeImageConstraintService({ db }: AdminSizeImageConstraintServiceDeps): ServiceImpl<typeof SizeImageConstraintService> {
  return {
    async create(req) {
      validateSizeImageConstraintCreate(req);
      const row = await inTransaction(db, async (tx) => {
        // Its size, if it exists already, is held: a size delete either counts this constraint or happens first.
        await holds.sizeIfPresent(tx, req.size);
        return constraints.create(tx, req.size, req.images);
      });
      return { sizeImageConstraint: toProtoSizeImageConstraint(row) };
    },
    async update(req) {
      validateSizeImageConstraintUpdate(req);
      return { sizeImageConstraint: toProtoSizeImageConstraint(await constraints.update(db, req.size, versionOf(req.version), req.images)) };
    },
    async delete(req) {
      validateSizeId(req.size);
      return { sizeImageConstraint: toProtoSizeImageConstraint(await constraints.delete(db, req.size)) };
    },
    async get(req) {
      validateSizeId(req.size);
      return { sizeImageConstraint: toProtoSizeImageConstraint(await constraints.get(db, req.size)) };
    },
    async list(req) {
      const page = await constraints.list(db, pageRequest(req.paging));
      return { sizeImageConstraints: page.items.map(toProtoSizeImageConstraint), nextPageToken: page.nextPageToken };
    },
    async try(req) {
      validateSizeAndImage(req);
      return tryImageOnSize(db, req.size, req.image);
    },
  };
}
