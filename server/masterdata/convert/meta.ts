import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Meta, MetaSchema } from "../../../gen/masterdata/v1/common_pb.js";

export const API_VERSION = "v1";

/** The meta columns every entity row has. */
export interface MetaRow {
  id: string;
  annotations: Record<string, string>;
  labels: string[];
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

export function toMeta(kind: string, row: MetaRow): Meta {
  return create(MetaSchema, {
    id: row.id,
    kind,
    apiversion: API_VERSION,
    version: BigInt(row.version),
    createdTime: timestampFromDate(row.createdAt),
    updatedTime: timestampFromDate(row.updatedAt),
    annotations: row.annotations,
    labels: row.labels,
  });
}

/** The id of a new entity: the client's, or a fresh UUID v4 when it sent none. */
export const newId = (meta: Meta | undefined): string => (meta?.id ? meta.id : randomUUID());

/** The meta fields a client may set; id, version and times are the server's. */
export function metaColumnsFrom(meta: Meta | undefined): { annotations: Record<string, string>; labels: string[] } {
  return { annotations: { ...(meta?.annotations ?? {}) }, labels: [...(meta?.labels ?? [])] };
}

/**
 * A proto Timestamp as a millisecond Date, cut rather than rounded up (the
 * library rounds up), so "at or before 12:00:00.0019" never includes .002.
 */
export function dateFromTimestamp(ts: Timestamp): Date {
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000));
}
