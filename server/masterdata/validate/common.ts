import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Meta, QuotaSet } from "../../../gen/masterdata/v1/common_pb.js";
import { clip, type Validator, validator } from "../../validate/validator.js";

export const MAX_ID_LENGTH = 128;
const ID = /^[a-z0-9]([a-z0-9._@-]*[a-z0-9])?$/;

/**
 * Masterdata ids: server-made UUIDs or client-chosen lowercase names (user
 * logins, project slugs): letters, digits, '.', '_', '@', '-', starting and
 * ending with a letter or digit, at most 128 characters.
 */
export function checkId(v: Validator, path: string, id: string): void {
  if (id === "") v.add(path, "is required");
  else if (id.length > MAX_ID_LENGTH) v.add(path, `must be at most ${MAX_ID_LENGTH} characters`);
  else if (!ID.test(id)) v.add(path, `"${clip(id)}" must be lowercase letters, digits, '.', '_', '@' or '-', starting and ending with a letter or digit`);
}

/** Labels of an entity: at most 64 distinct, non-empty tags of up to 128 characters. */
function checkLabels(v: Validator, path: string, labels: string[]): void {
  v.list(path, labels, 64, (p, l) => {
    if (l === "") v.add(p, "must not be empty");
    else v.text(p, l, 128);
  });
}

/**
 * The meta of a create or update request. On create the id may be empty (the
 * server makes one); an update must name the entity and the version it read.
 */
export function checkMeta(v: Validator, path: string, meta: Meta | undefined, opts: { create: boolean; kind: string }): void {
  if (!meta) {
    if (!opts.create) v.add(path, "is required: send meta.id and meta.version as read");
    return;
  }
  if (meta.id !== "" || !opts.create) checkId(v, `${path}.id`, meta.id);
  if (meta.kind !== "" && meta.kind !== opts.kind) v.add(`${path}.kind`, `"${clip(meta.kind, 32)}" is not ${opts.kind}`);
  if (meta.apiversion !== "" && meta.apiversion !== "v1") v.add(`${path}.apiversion`, `"${clip(meta.apiversion, 16)}" is not v1`);
  if (!opts.create && meta.version === 0n) v.add(`${path}.version`, "is required: send the version you read");
  v.labels(`${path}.annotations`, meta.annotations);
  checkLabels(v, `${path}.labels`, meta.labels);
}

/** Every limit that is set must be at least 0 (0 forbids the resource). */
export function checkQuotas(v: Validator, path: string, q: QuotaSet | undefined): void {
  if (!q) return;
  for (const key of ["machine", "ip", "network", "project"] as const) {
    const max = q[key]?.max;
    if (max !== undefined && max < 0) v.add(`${path}.${key}.max`, `${max} must not be negative`);
  }
}

/** Get and Delete: a well-formed id. */
export function validateIdRequest(req: { id: string }): void {
  const v = validator();
  checkId(v, "id", req.id);
  v.check();
}

/** GetHistory: a well-formed id and, if given, a valid point in time. */
export function validateHistoryRequest(req: { id: string; at?: Timestamp }): void {
  const v = validator();
  checkId(v, "id", req.id);
  if (req.at) {
    if (req.at.nanos < 0 || req.at.nanos > 999_999_999) v.add("at.nanos", "must be between 0 and 999999999");
    // 0001-01-01 to 9999-12-31, the range of google.protobuf.Timestamp.
    if (req.at.seconds < -62_135_596_800n || req.at.seconds > 253_402_300_799n) v.add("at.seconds", "is outside 0001-01-01 to 9999-12-31");
  }
  v.check();
}

/**
 * Find filters. Id filters must be well-formed ids, text filters bounded text;
 * annotation and label filters follow the rules of the values they match.
 */
export function validateFindRequest(req: {
  ids?: Record<string, string | undefined>;
  texts?: Record<string, { value: string | undefined; max: number }>;
  annotations: Record<string, string>;
  labels: string[];
}): void {
  const v = validator();
  for (const [path, id] of Object.entries(req.ids ?? {})) if (id !== undefined) checkId(v, path, id);
  for (const [path, { value, max }] of Object.entries(req.texts ?? {})) v.text(path, value, max);
  v.labels("annotations", req.annotations);
  checkLabels(v, "labels", req.labels);
  v.check();
}
