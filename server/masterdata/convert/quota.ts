import { create } from "@bufbuild/protobuf";
import { QuotaSchema, type QuotaSet, QuotaSetSchema } from "../../../gen/masterdata/v1/common_pb.js";
import type { StoredQuotas } from "../db/schema/index.js";

const KEYS = ["machine", "ip", "network", "project"] as const;

/** Stored limits as a proto QuotaSet; an absent limit becomes a Quota without max. */
export function toQuotaSet(q: StoredQuotas): QuotaSet {
  const out = create(QuotaSetSchema);
  for (const k of KEYS) out[k] = create(QuotaSchema, q[k] === undefined ? {} : { max: q[k] });
  return out;
}

/** The limits of a proto QuotaSet; unset ones are not stored (unlimited). */
export function fromQuotaSet(q: QuotaSet | undefined): StoredQuotas {
  const out: StoredQuotas = {};
  for (const k of KEYS) {
    const max = q?.[k]?.max;
    if (max !== undefined) out[k] = max;
  }
  return out;
}
