import type { ChangeRow } from "../db/schema/index.js";

/** Partition level of a machine that has none yet (a bare record made by an early event). */
export const NO_PARTITION = "none";

/**
 * The feed topic of a change, below `<prefix>/v1/events/` (versioned by the
 * sink's `v1`): `machines/<partition>/<machine-id>/<kind>` or
 * `switches/<partition>/<switch-id>/<kind>`.
 */
export function feedTopic(change: Pick<ChangeRow, "entity" | "entityId" | "partitionId" | "kind">): string {
  const collection = change.entity === "switch" ? "switches" : "machines";
  return [collection, level(change.partitionId ?? "") || NO_PARTITION, level(change.entityId) || "none", level(change.kind)].join("/");
}

/**
 * One topic level. Ids are validated where they are made, but a level must
 * never become a wildcard (`+`, `#`) or a separator (`/`), nor carry a NUL:
 * each of those is replaced by `_`, so a subscription cannot be fooled into
 * matching another machine's topic. The payload keeps the real id.
 */
export function level(value: string): string {
  return value.replace(/[+#/\u0000]/g, "_");
}
