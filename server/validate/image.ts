import type { ImageServiceCreateRequest, ImageServiceUpdateRequest } from "../../gen/metal/admin/v1/image_pb.js";
import type { ImageServiceListRequest } from "../../gen/metal/api/v1/image_pb.js";
import { ImageClassification, ImageFeature } from "../../gen/metal/api/v1/image_pb.js";
import { type ImageName, isImageOs, parseImageId, parseImageRef } from "../domain/image-version.js";
import { clip, type Validator, validator } from "./validator.js";

function features(v: Validator, path: string, fs: readonly number[]): void {
  if (fs.length === 0) v.add(path, "at least one feature is required (machine, firewall)");
  v.list(path, fs, 2, (p, f) => v.enumValue(p, f, ImageFeature));
}

/** An image checksum: empty (unknown) or 64 hex digits; either case, as sha256sum prints lowercase and some tools uppercase. */
function sha256(v: Validator, path: string, value: string | undefined): void {
  if (value === undefined || value === "" || /^[0-9a-fA-F]{64}$/.test(value)) return;
  v.add(path, `"${clip(value)}" must be empty or a SHA-256 digest of 64 hex digits`);
}

/**
 * Checks a create request and returns the parsed id. The URL is checked for
 * its form only: unlike the original metal-api, no HTTP HEAD request is sent
 * to it (the control plane should not depend on reaching the image server, nor
 * be made to send requests to arbitrary addresses when an image is registered).
 */
export function validateImageCreate(req: ImageServiceCreateRequest): ImageName {
  const v = validator();
  const name = parseImageId(req.id);
  if (typeof name === "string") v.add("id", req.id === "" ? "is required" : name);
  v.text("name", req.name, 128).text("description", req.description, 1024).url("url", req.url, { required: true }).labels("labels", req.labels);
  features(v, "features", req.features);
  sha256(v, "sha256", req.sha256);
  if (req.classification !== ImageClassification.UNSPECIFIED) v.enumValue("classification", req.classification, ImageClassification);
  v.check();
  return name as ImageName;
}

export function validateImageUpdate(req: ImageServiceUpdateRequest): void {
  const v = validator();
  const name = parseImageId(req.id);
  if (typeof name === "string") v.add("id", req.id === "" ? "is required" : name);
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  v.text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels?.values);
  if (req.url !== undefined) v.url("url", req.url, { required: true });
  if (req.features) features(v, "features", req.features.values);
  sha256(v, "sha256", req.sha256);
  if (req.classification !== ImageClassification.UNSPECIFIED) v.enumValue("classification", req.classification, ImageClassification);
  v.check();
}

/** A full image id, for deletes. */
export function validateImageId(path: string, id: string): void {
  const v = validator();
  const name = parseImageId(id);
  if (typeof name === "string") v.add(path, id === "" ? "is required" : name);
  v.check();
}

/** Adds the problem of an image reference (an OS, an OS with a version prefix, or a full id), if any. */
export function checkImageRef(v: Validator, path: string, ref: string): Validator {
  const readings = parseImageRef(ref);
  if (typeof readings === "string") v.add(path, readings);
  return v;
}

/** An image reference in a request: "debian", "debian-12", "debian-12.0" or "debian-12.0.20241201". */
export function validateImageRef(path: string, ref: string, feature?: number): void {
  const v = checkImageRef(validator(), path, ref);
  if (feature !== undefined && feature !== ImageFeature.UNSPECIFIED) v.enumValue("feature", feature, ImageFeature);
  v.check();
}

export function validateImageList(req: ImageServiceListRequest): void {
  const v = validator();
  if (req.os !== undefined && !isImageOs(req.os)) v.add("os", `"${req.os.slice(0, 64)}" is not an OS name`);
  if (req.feature !== ImageFeature.UNSPECIFIED) v.enumValue("feature", req.feature, ImageFeature);
  if (req.classification !== ImageClassification.UNSPECIFIED) v.enumValue("classification", req.classification, ImageClassification);
  v.check();
}
