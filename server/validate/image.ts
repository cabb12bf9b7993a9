import type { ImageServiceCreateRequest, ImageServiceUpdateRequest } from "../../gen/metal/admin/v1/image_pb.js";
import type { SizeImageConstraintServiceCreateRequest, SizeImageConstraintServiceUpdateRequest } from "../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { ImageClassification, ImageFeature } from "../../gen/metal/api/v1/image_pb.js";
import { parseImageId, type ImageName } from "../domain/image-version.js";
import { imageRangeProblems } from "../domain/size-image-constraint.js";
import { validator, type Validator } from "./validator.js";

function features(v: Validator, path: string, fs: readonly number[]): void {
  if (fs.length === 0) v.add(path, "at least one feature is required");
  v.list(path, fs, 2, (p, f) => v.enumValue(p, f, ImageFeature));
}

/** Checks a create request and returns the parsed id. */
export function validateImageCreate(req: ImageServiceCreateRequest): ImageName {
  const v = validator();
  const name = parseImageId(req.id);
  if (req.id.length > 128) v.add("id", "must be at most 128 characters");
  else if (typeof name === "string") v.add("id", name);
  v.text("name", req.name, 128).text("description", req.description, 1024).url("url", req.url, { required: true }).labels("labels", req.labels);
  features(v, "features", req.features);
  if (req.classification !== 0) v.enumValue("classification", req.classification, ImageClassification);
  v.check();
  return name as ImageName;
}

export function validateImageUpdate(req: ImageServiceUpdateRequest): void {
  const v = validator().requiredText("id", req.id, 128);
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  v.text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels?.values);
  if (req.url !== undefined) v.url("url", req.url, { required: true });
  if (req.features) features(v, "features", req.features.values);
  if (req.classification !== 0) v.enumValue("classification", req.classification, ImageClassification);
  v.check();
}

/** An image reference (full or short id) in a request. */
export function validateImageRef(path: string, ref: string): void {
  validator().requiredText(path, ref, 128).check();
}

export function validateSizeImageConstraint(req: SizeImageConstraintServiceCreateRequest | SizeImageConstraintServiceUpdateRequest): void {
  const v = validator().id("size", req.size);
  if ("version" in req && req.version === 0n) v.add("version", "is required: send the version you read");
  const entries = Object.keys(req.images).length;
  if (entries === 0) v.add("images", "at least one OS is required");
  if (entries > 64) v.add("images", "must have at most 64 entries");
  for (const p of imageRangeProblems("images", req.images)) v.add(p.path, p.message);
  v.check();
}
