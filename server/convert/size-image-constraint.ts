import { create } from "@bufbuild/protobuf";
import { type SizeImageConstraint, SizeImageConstraintSchema } from "../../gen/metal/api/v1/size_image_constraint_pb.js";
import type { SizeImageConstraintRow } from "../db/schema/index.js";
import { toProtoMeta } from "./meta.js";

export function toProtoSizeImageConstraint(row: SizeImageConstraintRow): SizeImageConstraint {
  return create(SizeImageConstraintSchema, { size: row.id, images: row.images, meta: toProtoMeta(row) });
}
