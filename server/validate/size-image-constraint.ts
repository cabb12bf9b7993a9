import type { SizeImageConstraintServiceCreateRequest, SizeImageConstraintServiceUpdateRequest } from "../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { imageRangeProblems } from "../domain/size-image-constraint.js";
import { checkImageRef } from "./image.js";
import { type Validator, validator } from "./validator.js";

function ranges(v: Validator, images: Record<string, string>): void {
  if (Object.keys(images).length === 0) v.add("images", "at least one OS is required");
  for (const p of imageRangeProblems("images", images)) v.add(p.path, p.message);
}

/** The size is checked as an id only; it need not exist (constraints do not reference the sizes table). */
export function validateSizeImageConstraintCreate(req: SizeImageConstraintServiceCreateRequest): void {
  const v = validator().id("size", req.size);
  ranges(v, req.images);
  v.check();
}

export function validateSizeImageConstraintUpdate(req: SizeImageConstraintServiceUpdateRequest): void {
  const v = validator().id("size", req.size);
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  ranges(v, req.images);
  v.check();
}

export function validateSizeId(size: string): void {
  validator().id("size", size).check();
}

/** A Try request: a size id and an image reference. */
export function validateSizeAndImage(req: { size: string; image: string }): void {
  const v = validator().id("size", req.size);
  checkImageRef(v, "image", req.image).check();
}
