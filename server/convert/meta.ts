import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Meta, MetaSchema } from "../../gen/metal/api/v1/common_pb.js";

/** The bookkeeping columns of a row as proto Meta. */
export function toProtoMeta(row: { createdAt: Date; updatedAt: Date; version: number }): Meta {
  return create(MetaSchema, {
    createdAt: timestampFromDate(row.createdAt),
    updatedAt: timestampFromDate(row.updatedAt),
    version: BigInt(row.version),
  });
}

/**
 * The version an update request carries. Zero is refused by the validators, so
 * the cast only has to care about numbers beyond what a row can hold.
 */
export function versionOf(version: bigint): number {
  return version > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(version);
}
