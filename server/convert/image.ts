import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ImageServiceCreateRequest, ImageServiceUpdateRequest } from "../../gen/metal/admin/v1/image_pb.js";
import { type Image, ImageClassification, ImageSchema } from "../../gen/metal/api/v1/image_pb.js";
import type { ImageRow, NewImageRow } from "../db/schema/index.js";
import { type ImageName, type ResolvableImage, versionKey } from "../domain/image-version.js";
import { toProtoMeta } from "./meta.js";

/** How long a new image is offered when the request names no expiry. */
export const DEFAULT_IMAGE_LIFETIME_MS = 90 * 24 * 3600_000;

export function toProtoImage(row: ImageRow): Image {
  return create(ImageSchema, {
    id: row.id,
    name: row.name,
    description: row.description,
    url: row.url,
    sha256: row.sha256,
    features: row.features,
    os: row.os,
    version: row.osVersion,
    classification: row.classification,
    expiresAt: timestampFromDate(row.expiresAt),
    labels: row.labels,
    meta: toProtoMeta(row),
  });
}

/** A row as the pure resolution rules see it. */
export const resolvable = (row: ImageRow): ResolvableImage & { row: ImageRow } => ({
  id: row.id,
  os: row.os,
  version: row.osVersion,
  features: row.features,
  expiresAt: row.expiresAt,
  row,
});

/** The row of a validated create request; `name` is its parsed id. */
export function imageRowFromCreate(req: ImageServiceCreateRequest, name: ImageName, now = Date.now()): NewImageRow {
  return {
    id: req.id,
    name: req.name,
    description: req.description,
    url: req.url,
    sha256: req.sha256.toLowerCase(),
    features: [...new Set(req.features)].sort(),
    os: name.os,
    osVersion: name.version,
    versionKey: versionKey(name.version),
    classification: req.classification === ImageClassification.UNSPECIFIED ? ImageClassification.PREVIEW : req.classification,
    expiresAt: req.expiresAt ? timestampDate(req.expiresAt) : new Date(now + DEFAULT_IMAGE_LIFETIME_MS),
    labels: req.labels,
  };
}

/**
 * Only the fields the update sets; id, OS and version never change. An unset
 * sha256 keeps the stored one, like every other unset field, also when the url
 * changes (a stale checksum fails the download: it never lets a wrong file through).
 */
export function imagePatchFromUpdate(req: ImageServiceUpdateRequest): Partial<NewImageRow> {
  const patch: Partial<NewImageRow> = {};
  if (req.name !== undefined) patch.name = req.name;
  if (req.description !== undefined) patch.description = req.description;
  if (req.url !== undefined) patch.url = req.url;
  if (req.sha256 !== undefined) patch.sha256 = req.sha256.toLowerCase();
  if (req.features) patch.features = [...new Set(req.features.values)].sort();
  if (req.classification !== ImageClassification.UNSPECIFIED) patch.classification = req.classification;
  if (req.expiresAt) patch.expiresAt = timestampDate(req.expiresAt);
  if (req.labels) patch.labels = req.labels.values;
  return patch;
}
