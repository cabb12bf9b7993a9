import { globError, globMatch } from "./glob.js";

export enum ConstraintType {
  Cores = 1,
  Memory = 2,
  Storage = 3,
  Gpu = 4,
}

export interface Constraint {
  type: ConstraintType;
  min: number;
  max: number;
  identifier: string;
}

export interface SizeSpec {
  id: string;
  constraints: Constraint[];
}

/** The hardware a machine reports, as far as sizes care. */
export interface Hardware {
  cpus: { model: string; cores: number }[];
  memoryBytes: number;
  disks: { name: string; sizeBytes: number }[];
  gpus: { model: string }[];
}

/** A problem of an input, at a field path. */
export interface Problem {
  path: string;
  message: string;
}

export const UNKNOWN_SIZE = "unknown";

const typeName: Record<ConstraintType, string> = { 1: "cores", 2: "memory", 3: "storage", 4: "gpu" };

/** Every problem of a constraint list, each with its field path. */
export function constraintProblems(path: string, constraints: readonly Constraint[]): Problem[] {
  const problems: Problem[] = [];
  const add = (at: string, message: string) => problems.push({ path: at, message });
  if (constraints.length === 0) add(path, "at least one constraint is required");
  if (constraints.length > 32) add(path, "at most 32 constraints");
  const seen = new Set<string>();
  constraints.forEach((c, i) => {
    const p = `${path}[${i}]`;
    if (!(c.type in typeName)) {
      add(`${p}.type`, "must be cores, memory, storage or gpu");
      return;
    }
    if (c.max < c.min) add(`${p}.max`, `${c.max} is less than min ${c.min}`);
    if (c.identifier.length > 256) add(`${p}.identifier`, "must be at most 256 characters");
    const ge = globError(c.identifier);
    if (ge) add(`${p}.identifier`, ge);
    if (c.type === ConstraintType.Memory && c.identifier !== "") add(`${p}.identifier`, "memory constraints take no identifier");
    if (c.type === ConstraintType.Gpu && c.identifier === "") add(`${p}.identifier`, "gpu constraints need an identifier (the GPU model)");
    // Cores and memory at most once each; storage and gpu once per identifier.
    const key = c.type === ConstraintType.Cores || c.type === ConstraintType.Memory ? `${c.type}` : `${c.type}/${c.identifier}`;
    if (seen.has(key)) add(p, `a second ${typeName[c.type]} constraint${key.includes("/") ? ` for "${c.identifier}"` : ""}`);
    seen.add(key);
  });
  return problems;
}

/**
 * Two sizes overlap when they constrain the same things (the same types with
 * the same identifiers) and every pair of ranges intersects: then one machine
 * could match both. Sizes constraining different things tell machines apart
 * by the exhaustive-coverage rule of matching (as in the original).
 */
export function overlaps(a: readonly Constraint[], b: readonly Constraint[]): boolean {
  const key = (c: Constraint) => `${c.type}/${c.identifier}`;
  if (a.length !== b.length) return false;
  const bByKey = new Map(b.map((c) => [key(c), c]));
  for (const ca of a) {
    const cb = bByKey.get(key(ca));
    if (!cb) return false;
    if (ca.max < cb.min || cb.max < ca.min) return false;
  }
  return true;
}

function within(c: Constraint, amount: number): boolean {
  return amount >= c.min && amount <= c.max;
}

/**
 * Whether hardware fits a size: every constraint is met, and every CPU, disk
 * and GPU is counted by some constraint of its type (so a machine with an
 * extra GPU does not pass as a GPU-less size).
 */
export function fits(size: SizeSpec, hw: Hardware): boolean {
  const covered = { cpu: new Set<number>(), disk: new Set<number>(), gpu: new Set<number>() };
  for (const c of size.constraints) {
    switch (c.type) {
      case ConstraintType.Cores: {
        let cores = 0;
        hw.cpus.forEach((cpu, i) => {
          if (globMatch(c.identifier, cpu.model)) {
            cores += cpu.cores;
            covered.cpu.add(i);
          }
        });
        if (!within(c, cores)) return false;
        break;
      }
      case ConstraintType.Memory:
        if (!within(c, hw.memoryBytes)) return false;
        break;
      case ConstraintType.Storage: {
        let bytes = 0;
        hw.disks.forEach((d, i) => {
          if (globMatch(c.identifier, d.name)) {
            bytes += d.sizeBytes;
            covered.disk.add(i);
          }
        });
        if (!within(c, bytes)) return false;
        break;
      }
      case ConstraintType.Gpu: {
        let n = 0;
        hw.gpus.forEach((g, i) => {
          if (globMatch(c.identifier, g.model)) {
            n++;
            covered.gpu.add(i);
          }
        });
        if (!within(c, n)) return false;
        break;
      }
    }
  }
  const constrains = (t: ConstraintType) => size.constraints.some((c) => c.type === t);
  if (constrains(ConstraintType.Cores) && covered.cpu.size !== hw.cpus.length) return false;
  if (constrains(ConstraintType.Storage) && covered.disk.size !== hw.disks.length) return false;
  if (covered.gpu.size !== hw.gpus.length) return false;
  return true;
}

/** The one size the hardware fits, or "unknown" when none or several do. */
export function matchSize(sizes: readonly SizeSpec[], hw: Hardware): string {
  const matching = sizes.filter((s) => fits(s, hw));
  return matching.length === 1 ? matching[0]!.id : UNKNOWN_SIZE;
}
