/** An address family and its width in bits. */
export type Family = 4 | 6;
export const familyBits = (f: Family) => (f === 4 ? 32 : 128);

/** A parsed prefix: its network address as a number, its length and family. */
export interface Prefix {
  family: Family;
  network: bigint;
  length: number;
}

/** An address as a number with its family. */
export interface Address {
  family: Family;
  value: bigint;
}

/** A decimal octet as Node's isIPv4 accepts it: 0-255 without leading zeros. */
const V4_OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** The eight groups of an IPv6 address in hex notation ("::" expanded); undefined when it is not one. */
function ipv6Groups(s: string): string[] | undefined {
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  // This also refuses zone ids and IPv4-mapped forms, which no machine address uses.
  if (![...head, ...tail].every((g) => HEX_GROUP.test(g))) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  if (head.length + tail.length > 7) return undefined;
  return [...head, ...Array<string>(8 - head.length - tail.length).fill("0"), ...tail];
}

// Parsed over strings, not with node:net: domain rules are computation only and import no Node module.
export function parseAddress(s: string): Address | undefined {
  const octets = s.split(".");
  if (octets.length === 4 && octets.every((o) => V4_OCTET.test(o))) {
    return { family: 4, value: octets.reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n) };
  }
  const groups = ipv6Groups(s);
  if (groups) return { family: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
  return undefined;
}

export function formatAddress(a: Address): string {
  if (a.family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => ((a.value >> s) & 255n).toString()).join(".");
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((a.value >> BigInt(112 - 16 * i)) & 0xffffn));
  // Compress the longest run of zero groups (at least two), as RFC 5952 asks.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best === -1) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

const mask = (f: Family, length: number) => ((1n << BigInt(familyBits(f))) - 1n) ^ ((1n << BigInt(familyBits(f) - length)) - 1n);

/** Parses "10.0.0.0/24"; `strict` refuses host bits set ("10.0.0.1/24"). Returns an error message or the prefix. */
export function parsePrefix(s: string, strict = true): Prefix | string {
  const slash = s.indexOf("/");
  if (slash === -1) return `"${s}" is not a CIDR prefix (address/length)`;
  const addr = parseAddress(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (!addr) return `"${s}" is not a CIDR prefix: "${s.slice(0, slash)}" is not an IP address`;
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > familyBits(addr.family)) {
    return `"${s}" has an invalid prefix length (0 to ${familyBits(addr.family)})`;
  }
  const length = Number(lenText);
  const network = addr.value & mask(addr.family, length);
  if (strict && network !== addr.value) return `"${s}" has host bits set; did you mean ${formatPrefix({ family: addr.family, network, length })}?`;
  return { family: addr.family, network, length };
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress({ family: p.family, value: p.network })}/${p.length}`;
}

/** Number of addresses in a prefix. */
export const size = (p: Prefix): bigint => 1n << BigInt(familyBits(p.family) - p.length);
export const lastAddress = (p: Prefix): bigint => p.network + size(p) - 1n;

export function contains(outer: Prefix, inner: Prefix): boolean {
  return outer.family === inner.family && inner.length >= outer.length && (inner.network & mask(outer.family, outer.length)) === outer.network;
}

export function containsAddress(p: Prefix, a: Address): boolean {
  return p.family === a.family && (a.value & mask(p.family, p.length)) === p.network;
}

export function overlap(a: Prefix, b: Prefix): boolean {
  return contains(a, b) || contains(b, a);
}

/**
 * The usable host range of a prefix for IP allocation: IPv4 prefixes up to /30
 * reserve the network and broadcast address; /31 and /32 (point-to-point,
 * host routes) use all; IPv6 reserves the subnet-router anycast address (the
 * first) except for /127 and /128.
 */
export function usableRange(p: Prefix): { first: bigint; last: bigint } {
  const bits = familyBits(p.family);
  if (p.family === 4) {
    if (p.length >= 31) return { first: p.network, last: lastAddress(p) };
    return { first: p.network + 1n, last: lastAddress(p) - 1n };
  }
  if (p.length >= bits - 1) return { first: p.network, last: lastAddress(p) };
  return { first: p.network + 1n, last: lastAddress(p) };
}

export const usableCount = (p: Prefix): bigint => {
  const r = usableRange(p);
  return r.last - r.first + 1n;
};

/** The n-th child prefix of `length` inside `parent` (0-based). */
export function childAt(parent: Prefix, length: number, n: bigint): Prefix {
  return { family: parent.family, network: parent.network + n * (1n << BigInt(familyBits(parent.family) - length)), length };
}

/** How many children of `length` fit into `parent`. */
export const childCount = (parent: Prefix, length: number): bigint => 1n << BigInt(length - parent.length);

/** A uniformly random bigint in [0, n). */
export function randomBelow(n: bigint, random: () => number = Math.random): bigint {
  if (n <= 0n) return 0n;
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return BigInt(Math.floor(random() * Number(n)));
  let r = 0n;
  const words = Math.ceil(n.toString(2).length / 32) + 1;
  for (let i = 0; i < words; i++) r = (r << 32n) | BigInt(Math.floor(random() * 2 ** 32));
  return r % n;
}
