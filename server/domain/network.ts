import { childCount, type Family, familyBits, overlap, type Prefix, parsePrefix, usableCount } from "./ip-math.js";
import type { Problem } from "./size.js";

/** Network roles; the numbers are those of metal.api.v1.NetworkType. */
export const NetworkKind = { SUPER: 1, UNDERLAY: 2, EXTERNAL: 3, CHILD: 4, CHILD_SHARED: 5 } as const;
/** IP types; the numbers are those of metal.api.v1.IpType. */
export const IpKind = { EPHEMERAL: 1, STATIC: 2 } as const;
/** Address family choice; the numbers are those of metal.api.v1.AddressFamily. */
export const FamilyChoice = { ANY: 0, V4: 1, V6: 2, DUAL_STACK: 3 } as const;

export interface ChildLengths {
  ipv4?: number;
  ipv6?: number;
}

const lengthOf = (l: ChildLengths, f: Family) => (f === 4 ? l.ipv4 : l.ipv6);

/** Parses a list of CIDRs (host bits must be clear), reporting every problem at its index. */
export function parsePrefixList(path: string, values: readonly string[], problems: Problem[]): Prefix[] {
  const out: Prefix[] = [];
  values.forEach((v, i) => {
    const p = parsePrefix(v);
    if (typeof p === "string") problems.push({ path: `${path}[${i}]`, message: p });
    else {
      const clash = out.findIndex((o) => overlap(o, p));
      if (clash !== -1) problems.push({ path: `${path}[${i}]`, message: `overlaps ${path}[${clash}]` });
      out.push(p);
    }
  });
  return out;
}

export interface OperatorNetworkSpec {
  kind: number;
  partition: string;
  prefixes: readonly string[];
  destinationPrefixes: readonly string[];
  defaultChildLengths: ChildLengths;
  nat: boolean;
}

/** Rules for super, underlay and external networks. */
export function operatorNetworkProblems(s: OperatorNetworkSpec): Problem[] {
  const problems: Problem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  if (s.kind !== NetworkKind.SUPER && s.kind !== NetworkKind.UNDERLAY && s.kind !== NetworkKind.EXTERNAL) {
    add("type", "must be super, underlay or external (child networks are allocated through the tenant API)");
  }
  if ((s.kind === NetworkKind.SUPER || s.kind === NetworkKind.UNDERLAY) && s.partition === "") add("partition", "is required for super and underlay networks");
  if ((s.kind === NetworkKind.SUPER || s.kind === NetworkKind.UNDERLAY) && s.nat) add("nat", "super and underlay networks cannot NAT");
  if (s.prefixes.length === 0) add("prefixes", "at least one prefix is required");
  if (s.prefixes.length > 16) add("prefixes", "must have at most 16 entries");
  if (s.destinationPrefixes.length > 64) add("destination_prefixes", "must have at most 64 entries");
  const prefixes = parsePrefixList("prefixes", s.prefixes, problems);
  const families = new Set(prefixes.map((p) => p.family));
  parsePrefixList("destination_prefixes", s.destinationPrefixes, problems).forEach((d, i) => {
    if (!families.has(d.family)) add(`destination_prefixes[${i}]`, `is IPv${d.family} but the network has no IPv${d.family} prefix`);
  });
  for (const f of [4, 6] as const) {
    const len = lengthOf(s.defaultChildLengths, f);
    const path = `default_child_prefix_length.ipv${f}`;
    if (s.kind !== NetworkKind.SUPER) {
      if (len !== undefined) add(path, "only super networks have child prefix lengths");
      continue;
    }
    if (!families.has(f)) {
      if (len !== undefined) add(path, `the network has no IPv${f} prefix`);
      continue;
    }
    if (len === undefined) add(path, `is required: the network has IPv${f} prefixes`);
    else {
      const longest = Math.max(...prefixes.filter((p) => p.family === f).map((p) => p.length));
      if (len <= longest || len > familyBits(f)) add(path, `must be longer than every IPv${f} prefix (/${longest}) and at most ${familyBits(f)}`);
    }
  }
  return problems;
}

/**
 * Which child prefixes a tenant network gets: one per requested family, of the
 * requested length or the super network's default. Lengths must be longer
 * than the super prefixes and within the family.
 */
export function childPlan(
  superPrefixes: readonly Prefix[],
  defaults: ChildLengths,
  requested: ChildLengths,
  choice: number,
): { ok: true; plan: { family: Family; length: number }[] } | { ok: false; problems: Problem[] } {
  const problems: Problem[] = [];
  const available = new Set(superPrefixes.map((p) => p.family));
  const wanted: Family[] = choice === FamilyChoice.V4 ? [4] : choice === FamilyChoice.V6 ? [6] : choice === FamilyChoice.DUAL_STACK ? [4, 6] : ([4, 6] as Family[]).filter((f) => available.has(f));
  const plan: { family: Family; length: number }[] = [];
  for (const f of wanted) {
    if (!available.has(f)) {
      problems.push({ path: "address_family", message: `the partition's super network has no IPv${f} prefix` });
      continue;
    }
    const length = lengthOf(requested, f) ?? lengthOf(defaults, f);
    const shortest = Math.min(...superPrefixes.filter((p) => p.family === f).map((p) => p.length));
    if (length === undefined) problems.push({ path: `length.ipv${f}`, message: "is required: the super network has no default" });
    else if (length <= shortest || length > familyBits(f)) {
      problems.push({ path: `length.ipv${f}`, message: `must be longer than /${shortest} and at most ${familyBits(f)}` });
    } else plan.push({ family: f, length });
  }
  for (const f of [4, 6] as const) {
    if (lengthOf(requested, f) !== undefined && !wanted.includes(f)) problems.push({ path: `length.ipv${f}`, message: `IPv${f} was not asked for` });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, plan };
}

const U64_MAX = (1n << 64n) - 1n;
const saturate = (n: bigint) => (n > U64_MAX ? U64_MAX : n);

export interface FamilyUse {
  availableIps: bigint;
  usedIps: bigint;
  availablePrefixes: bigint;
  usedPrefixes: bigint;
}

/** Consumption of one family of a network, from its prefixes and the counts stored for it. */
export function familyUse(prefixes: readonly Prefix[], f: Family, defaultChild: number | undefined, usedIps: number, usedPrefixes: number): FamilyUse {
  const mine = prefixes.filter((p) => p.family === f);
  const availableIps = mine.reduce((sum, p) => sum + usableCount(p), 0n);
  const availablePrefixes = defaultChild === undefined ? 0n : mine.reduce((sum, p) => sum + (defaultChild > p.length ? childCount(p, defaultChild) : 0n), 0n);
  return { availableIps: saturate(availableIps), usedIps: BigInt(usedIps), availablePrefixes: saturate(availablePrefixes), usedPrefixes: BigInt(usedPrefixes) };
}

/**
 * Whether a project may see and take addresses from a network: its own, shared child networks and
 * external networks. Every other network does not exist for the project.
 */
export function mayUseNetwork(network: { kind: number; project: string | null }, project: string): boolean {
  if (network.kind === NetworkKind.CHILD) return network.project === project;
  return network.kind === NetworkKind.CHILD_SHARED || network.kind === NetworkKind.EXTERNAL;
}
