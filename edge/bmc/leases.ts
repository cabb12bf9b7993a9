/**
 * ISC dhcpd lease files (dhcpd.leases(5)): how metal-bmc finds the BMCs of its
 * network. dhcpd appends a new `lease` block whenever a lease changes, so a
 * file holds many blocks per address and per MAC; only the newest one tells
 * the truth.
 */

export interface Lease {
  ip: string;
  mac: string;
  starts?: Date;
  /** Undefined for `ends never;`. */
  ends?: Date;
  /** `binding state`, e.g. "active" or "free"; undefined when the file has none (older dhcpd). */
  state?: string;
  hostname?: string;
}

type Token = { kind: "word" | "string" | "punct"; text: string };

function* tokens(text: string): Generator<Token> {
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === "{" || c === "}" || c === ";") {
      yield { kind: "punct", text: c };
      i++;
    } else if (c === '"') {
      let s = "";
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\" && i + 1 < text.length) i++;
        s += text[i];
        i++;
      }
      i++;
      yield { kind: "string", text: s };
    } else {
      let s = "";
      while (i < text.length && !/[\s{};"#]/.test(text[i]!)) s += text[i++];
      yield { kind: "word", text: s };
    }
  }
}

/** `3 2026/11/25 10:00:00` (weekday, UTC date, time) or `epoch 1764064800`; undefined for `never` or garbage. */
function leaseTime(words: string[]): Date | undefined {
  if (words[0] === "epoch" && words[1]) {
    const n = Number(words[1]);
    return Number.isFinite(n) ? new Date(n * 1000) : undefined;
  }
  const [, date, time] = words;
  if (!date || !time) return undefined;
  const d = new Date(`${date.replaceAll("/", "-")}T${time}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * Every lease block of the file, in file order. Blocks other than `lease`
 * (failover state, host declarations, server-duid) are skipped, and so is a
 * block cut short by a write in progress, so a concurrently rewritten file
 * never yields a half-read lease.
 */
export function parseLeases(text: string): Lease[] {
  const out: Lease[] = [];
  const it = tokens(text);
  let depth = 0;
  let current: Partial<Lease> | undefined;
  let statement: Token[] = [];
  for (const t of it) {
    if (t.kind === "punct" && t.text === "{") {
      if (depth === 0 && statement[0]?.text === "lease" && statement[1]) current = { ip: statement[1].text };
      depth++;
      statement = [];
    } else if (t.kind === "punct" && t.text === "}") {
      depth = Math.max(0, depth - 1);
      if (depth === 0 && current) {
        if (current.ip && current.mac) out.push(current as Lease);
        current = undefined;
      }
      statement = [];
    } else if (t.kind === "punct" && t.text === ";") {
      if (current && depth === 1)
        apply(
          current,
          statement.map((s) => s.text),
        );
      statement = [];
    } else {
      statement.push(t);
    }
  }
  return out;
}

function apply(lease: Partial<Lease>, words: string[]): void {
  const [first, second] = words;
  if (first === "starts") lease.starts = leaseTime(words.slice(1));
  else if (first === "ends") lease.ends = words[1] === "never" ? undefined : leaseTime(words.slice(1));
  else if (first === "binding" && second === "state" && words[2]) lease.state = words[2];
  else if (first === "hardware" && second === "ethernet" && words[2] && /^([0-9a-f]{1,2}:){5}[0-9a-f]{1,2}$/i.test(words[2])) {
    lease.mac = words[2]
      .toLowerCase()
      .split(":")
      .map((p) => p.padStart(2, "0"))
      .join(":");
  } else if (first === "client-hostname" && second !== undefined) lease.hostname = second;
}

export interface LeaseFilter {
  /** IPv4 networks the BMCs live in; empty: all. */
  allowedCidrs?: readonly string[];
  /** MACs to leave alone (e.g. the management server's own NIC). */
  ignoreMacs?: readonly string[];
}

function ipv4ToInt(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

export function inCidr(ip: string, cidr: string): boolean {
  const [net, bitsText] = cidr.split("/");
  const bits = Number(bitsText ?? "32");
  const a = ipv4ToInt(ip);
  const b = ipv4ToInt(net ?? "");
  if (a === undefined || b === undefined || !(bits >= 0 && bits <= 32)) return false;
  const size = 2 ** (32 - bits);
  return Math.floor(a / size) === Math.floor(b / size);
}

/**
 * The BMCs that hold a lease now: per MAC the newest lease (latest start;
 * on a tie the later block, as dhcpd appends), kept only when it is active
 * and not expired, and when the filters let it through. Sorted by address.
 */
export function activeLeases(leases: readonly Lease[], now: Date, filter: LeaseFilter = {}): Lease[] {
  const latest = new Map<string, Lease>();
  for (const l of leases) {
    const prev = latest.get(l.mac);
    if (!prev || (l.starts?.getTime() ?? 0) >= (prev.starts?.getTime() ?? 0)) latest.set(l.mac, l);
  }
  const ignore = new Set((filter.ignoreMacs ?? []).map((m) => m.toLowerCase()));
  const cidrs = filter.allowedCidrs ?? [];
  return [...latest.values()]
    .filter((l) => (l.state === undefined || l.state === "active") && (l.ends === undefined || l.ends.getTime() > now.getTime()))
    .filter((l) => !ignore.has(l.mac) && (cidrs.length === 0 || cidrs.some((c) => inCidr(l.ip, c))))
    .sort((a, b) => (ipv4ToInt(a.ip) ?? 0) - (ipv4ToInt(b.ip) ?? 0));
}

/** A lease file as dhcpd writes it, for the simulated partition and tests. */
export function formatLeases(leases: readonly Lease[]): string {
  const t = (d: Date) => `${d.getUTCDay()} ${d.toISOString().slice(0, 10).replaceAll("-", "/")} ${d.toISOString().slice(11, 19)}`;
  return leases
    .map((l) =>
      [
        `lease ${l.ip} {`,
        l.starts ? `  starts ${t(l.starts)};` : undefined,
        `  ends ${l.ends ? t(l.ends) : "never"};`,
        l.state ? `  binding state ${l.state};` : undefined,
        `  hardware ethernet ${l.mac};`,
        l.hostname ? `  client-hostname "${l.hostname}";` : undefined,
        "}",
      ]
        .filter((x) => x !== undefined)
        .join("\n"),
    )
    .join("\n");
}
