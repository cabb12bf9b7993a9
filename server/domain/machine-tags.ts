/**
 * The tags stored on an allocated machine: the user's tags, where a later
 * `key=value` replaces an earlier one of the same key, then the placement
 * tags (so rack spreading can find them on the project's machines), then the
 * system tags, which no user tag can override. Order is kept, duplicates go.
 */
export function machineTags(user: readonly string[], placement: readonly string[], system: Readonly<Record<string, string>>): string[] {
  const byKey = new Map<string, string>();
  const plain: string[] = [];
  for (const t of user) {
    const eq = t.indexOf("=");
    if (eq > 0) byKey.set(t.slice(0, eq), t);
    else plain.push(t);
  }
  for (const key of Object.keys(system)) byKey.delete(key);
  const all = [...plain, ...byKey.values(), ...placement, ...Object.entries(system).map(([k, v]) => `${k}=${v}`)];
  return [...new Set(all)];
}

/** System tag keys; reserved, a user tag with one of these keys is dropped. */
export const SystemTag = {
  ASN: "metal.io/primary-asn",
  RACK: "metal.io/rack",
  ROLE: "metal.io/role",
} as const;
