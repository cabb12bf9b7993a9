import type { ServiceImpl } from "@connectrpc/connect";
import type { SizeImageConstraintService } from "../../../gen/metal/api/v1/size_image_constraint_pb.js";
import type { DbHandle } from "../../db/handle.js";
import { tryImageOnSize } from "../../usecases/images/size-constraint.js";
import { validateSizeAndImage } from "../../validate/size-image-constraint.js";

export interface SizeImageConstraintServiceDeps {
  db: DbHandle;
}

/** Everyone with a token may ask whether an image may run on a size. */
export function createSizeImageConstraintService({ db }: SizeImageConstraintServiceDeps): ServiceImpl<typeof SizeImageConstraintService> {
  return {
    async try(req) {
      validateSizeAndImage(req);
      return tryImageOnSize(db, req.size, req.image);
    },
  };
}
