/**
 * A size proposed from one machine's hardware, for an operator who racks a
 * new kind of machine: every range is exactly what the machine has, so the
 * machine fits the proposal; the operator widens it if other machines vary.
 */
import { type Constraint, ConstraintType, type Hardware } from "./size.js";

/** The longest prefix all values share. */
export function longestCommonPrefix(values: readonly string[]): string {
  if (values.length === 0) return "";
  let prefix = values[0]!;
  for (const v of values.slice(1)) {
    let i = 0;
    while (i < prefix.length && i < v.length && prefix[i] === v[i]) i++;
    prefix = prefix.slice(0, i);
    if (prefix === "") break;
  }
  return prefix;
}

/** A glob that matches exactly `literal`: glob metacharacters become one-character sets. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]]/g, (c) => `[${c}]`);
}

/**
 * A glob matching every value: the value itself when all are the same,
 * otherwise their common prefix followed by `*`.
 */
export function globCovering(values: readonly string[]): string {
  const distinct = [...new Set(values)];
  if (distinct.length === 1) return escapeGlob(distinct[0]!);
  return `${escapeGlob(longestCommonPrefix(distinct))}*`;
}

/**
 * Constraints describing `hw`: the cores of all CPUs (identifier covering
 * their models), the memory, the disks together (identifier covering their
 * names), and one constraint per GPU model with its count. Kinds of hardware
 * the machine does not have get no constraint, except memory.
 */
export function suggestConstraints(hw: Hardware): Constraint[] {
  const constraints: Constraint[] = [];
  if (hw.cpus.length > 0) {
    const cores = hw.cpus.reduce((n, c) => n + c.cores, 0);
    constraints.push({ type: ConstraintType.Cores, min: cores, max: cores, identifier: globCovering(hw.cpus.map((c) => c.model)) });
  }
  constraints.push({ type: ConstraintType.Memory, min: hw.memoryBytes, max: hw.memoryBytes, identifier: "" });
  if (hw.disks.length > 0) {
    const bytes = hw.disks.reduce((n, d) => n + d.sizeBytes, 0);
    constraints.push({ type: ConstraintType.Storage, min: bytes, max: bytes, identifier: globCovering(hw.disks.map((d) => d.name)) });
  }
  const gpus = new Map<string, number>();
  for (const g of hw.gpus) gpus.set(g.model, (gpus.get(g.model) ?? 0) + 1);
  for (const [model, n] of [...gpus].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    // No glob matches only an empty model (and a GPU constraint needs an identifier): such GPUs are
    // counted together with all others under `*`, which the machine still fits.
    if (model === "") constraints.push({ type: ConstraintType.Gpu, min: hw.gpus.length, max: hw.gpus.length, identifier: "*" });
    else constraints.push({ type: ConstraintType.Gpu, min: n, max: n, identifier: escapeGlob(model) });
  }
  return constraints;
}
