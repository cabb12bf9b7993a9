import { type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import type { IpRow, NewIpRow } from "../db/schema/index.js";
import { type Address, childAt, childCount, formatAddress, formatPrefix, type Prefix, parsePrefix, randomBelow, usableCount, usableRange } from "../domain/ip-math.js";
import { exhausted } from "../errors.js";

/**
 * The IPAM: addresses, child prefixes, VRFs and ASNs handed out as rows whose
 * uniqueness PostgreSQL guarantees (unique keys, the prefix exclusion
 * constraint). Every function takes the caller's transaction handle, so an
 * allocation can join a larger transaction (a machine allocation) and vanish
 * with it on failure. Nothing here scans a whole prefix.
 */

/** Above this many slots a random pick almost never collides, so it is tried first. */
const RANDOM_FIRST = 1n << 16n;
const RANDOM_TRIES = 8;
/** Attempts after losing a race for a free candidate to a concurrent transaction. */
const RACE_RETRIES = 64;

type Rows = { rows: Record<string, unknown>[] };
const rowsOf = (r: unknown) => (r as Rows).rows;

/**
 * A statement with constant text, run as a named prepared statement: each
 * connection parses and plans it once (then reuses a generic plan), which
 * takes about a fifth off the time of an address pair against sending the
 * text every time (test/bench/ipam-breakdown.ts).
 */
interface Statement {
  readonly name: string;
  readonly text: string;
}

type Session = { prepareQuery(q: { sql: string; params: unknown[] }, fields: undefined, name: string, arrayMode: false): { execute(): Promise<unknown> } };

/**
 * Through drizzle's session rather than the pg client, so that it joins the
 * caller's transaction and works on PGlite too (which ignores the name).
 */
async function run(tx: DbHandle, s: Statement, params: unknown[]): Promise<Record<string, unknown>[]> {
  const session = (tx as unknown as { session: Session }).session;
  return rowsOf(await session.prepareQuery({ sql: s.text, params }, undefined, s.name, false).execute());
}

// Named columns, not `*`: a prepared statement whose result shape changes
// under it (a migration adding a column) fails with "cached plan must not
// change result type" until the connection is replaced.
const IP_COLUMNS = "id, ip, prefix, network_id, project, name, description, type, machine_id, labels, created_at, updated_at, version";

function toIpRow(r: Record<string, unknown>): IpRow {
  return {
    id: r.id as string,
    ip: r.ip as string,
    prefix: r.prefix as string,
    networkId: r.network_id as string,
    project: r.project as string,
    name: r.name as string,
    description: r.description as string,
    type: r.type as number,
    machineId: (r.machine_id as string | null) ?? null,
    labels: (typeof r.labels === "string" ? JSON.parse(r.labels) : r.labels) as Record<string, string>,
    createdAt: new Date(r.created_at as string),
    updatedAt: new Date(r.updated_at as string),
    version: Number(r.version),
  };
}

/** The IP row to store; `ip` and `prefix` are filled in by the allocator. */
export type IpTemplate = Omit<NewIpRow, "ip" | "prefix">;

/** $1 is the address, $2 the prefix, $3.. the template (see templateParams). */
const INSERT_IP: Statement = {
  name: "ipam_insert_ip",
  text: `insert into ips (id, ip, prefix, network_id, project, name, description, type, machine_id, labels)
    values ($3, $1::inet, $2::cidr, $4, $5, $6, $7, $8::int, $9, $10::jsonb)
    on conflict (ip) do nothing
    returning ${IP_COLUMNS}`,
};

const templateParams = (t: IpTemplate) => [t.id, t.networkId, t.project, t.name ?? "", t.description ?? "", t.type, t.machineId ?? null, JSON.stringify(t.labels ?? {})];

/**
 * Claims a free address of [$11, $12] in one round trip: $1 itself if it is
 * free (a random pick in a prefix that is not nearly full usually is), else
 * the first gap after it, else (wrapping) $11 or the first gap between $11
 * and $1. Each gap search walks the unique index on ip only until its first
 * gap. `found` tells a lost race (a free candidate existed, but a concurrent
 * transaction inserted it first) from a full prefix.
 */
const CLAIM_IP: Statement = {
  name: "ipam_claim_ip",
  text: `with candidate as (
      select coalesce(
        (select $1::inet where not exists (select 1 from ips where ip = $1::inet)),
        (select w.ip + 1 from (
           select ip, lead(ip) over (order by ip) as nxt from ips
           where ip >= $1::inet and ip <= $12::inet order by ip) w
         where w.ip < $12::inet and (w.nxt is null or w.nxt <> w.ip + 1)
         limit 1),
        (select $11::inet where $11::inet < $1::inet and not exists (select 1 from ips where ip = $11::inet)),
        (select w.ip + 1 from (
           select ip, lead(ip) over (order by ip) as nxt from ips
           where ip >= $11::inet and ip < $1::inet order by ip) w
         where w.ip + 1 < $1::inet and (w.nxt is null or w.nxt <> w.ip + 1)
         limit 1)
      ) as ip
    ), claimed as (
      insert into ips (id, ip, prefix, network_id, project, name, description, type, machine_id, labels)
      select $3, c.ip, $2::cidr, $4, $5, $6, $7, $8::int, $9, $10::jsonb
      from candidate c where c.ip is not null
      on conflict (ip) do nothing
      returning ${IP_COLUMNS}
    )
    select (select ip is not null from candidate) as found, claimed.* from (select 1) one left join claimed on true`,
};

/**
 * Claims a free address in one of `prefixes` (tried in order): one statement
 * from a random start, which takes the start itself when it is free and
 * otherwise searches for a gap (wrapping around once), so concurrent callers
 * rarely want the same address. A lost race is simply retried.
 */
export async function acquireIp(tx: DbHandle, prefixes: readonly Prefix[], t: IpTemplate, networkLabel: string): Promise<IpRow> {
  const tp = templateParams(t);
  for (const p of prefixes) {
    const { first, last } = usableRange(p);
    const count = usableCount(p);
    if (count <= 0n) continue;
    const prefix = formatPrefix(p);
    const firstIp = formatAddress({ family: p.family, value: first });
    const lastIp = formatAddress({ family: p.family, value: last });
    for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
      const start = formatAddress({ family: p.family, value: first + randomBelow(count) });
      const row = (await run(tx, CLAIM_IP, [start, prefix, ...tp, firstIp, lastIp]))[0]!;
      if (row.id) return toIpRow(row);
      if (row.found !== true) break; // this prefix is full
    }
  }
  throw exhausted(`network "${networkLabel}" has no free address left${prefixes.length > 1 ? ` in ${prefixes.map(formatPrefix).join(", ")}` : ""}`);
}

/** Below this many usable addresses a random pick collides too often to be worth a try of its own. */
const BATCH_RANDOM_MIN = 1n << 8n;

/** One multi-row insert of random addresses; rows are ten parameters each, as in INSERT_IP. */
function insertIpsStatement(n: number): Statement {
  const rows = Array.from({ length: n }, (_, i) => {
    const b = i * 10;
    return `($${b + 3}, $${b + 1}::inet, $${b + 2}::cidr, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}, $${b + 8}::int, $${b + 9}, $${b + 10}::jsonb)`;
  });
  return {
    name: `ipam_insert_ips_${n}`,
    text: `insert into ips (id, ip, prefix, network_id, project, name, description, type, machine_id, labels)
      values ${rows.join(", ")}
      on conflict (ip) do nothing
      returning ${IP_COLUMNS}`,
  };
}

export interface IpRequest {
  prefixes: readonly Prefix[];
  template: IpTemplate;
  networkLabel: string;
}

/**
 * Acquires one address per request, in as few round trips as it can: first
 * ONE insert of a random address for every request whose prefix is roomy
 * (a machine's IPv4 and IPv6 at once), then `acquireIp` for each request
 * that random pick did not settle. Same guarantees as `acquireIp`.
 */
export async function acquireIps(tx: DbHandle, requests: readonly IpRequest[]): Promise<IpRow[]> {
  const got = new Map<number, IpRow>();
  const tries = requests.map((r, i) => ({ i, r, p: r.prefixes.find((p) => usableCount(p) >= BATCH_RANDOM_MIN) })).filter((x): x is { i: number; r: IpRequest; p: Prefix } => x.p !== undefined);
  if (tries.length > 1) {
    const params = tries.flatMap(({ r, p }) => {
      const { first } = usableRange(p);
      return [formatAddress({ family: p.family, value: first + randomBelow(usableCount(p)) }), formatPrefix(p), ...templateParams(r.template)];
    });
    const byId = new Map(tries.map((t) => [t.r.template.id, t.i]));
    for (const row of await run(tx, insertIpsStatement(tries.length), params)) got.set(byId.get(row.id as string)!, toIpRow(row));
  }
  const out: IpRow[] = [];
  for (const [i, r] of requests.entries()) out.push(got.get(i) ?? (await acquireIp(tx, r.prefixes, r.template, r.networkLabel)));
  return out;
}

/** Claims one given address; false when it is already taken. */
export async function acquireSpecificIp(tx: DbHandle, prefix: Prefix, address: Address, t: IpTemplate): Promise<IpRow | undefined> {
  const row = (await run(tx, INSERT_IP, [formatAddress(address), formatPrefix(prefix), ...templateParams(t)]))[0];
  return row ? toIpRow(row) : undefined;
}

const RELEASE_IP: Statement = { name: "ipam_release_ip", text: "delete from ips where ip = $1::inet returning id" };

/** Releases an address: one statement. Returns whether it was allocated. */
export async function releaseIp(tx: DbHandle, ip: string): Promise<boolean> {
  return (await run(tx, RELEASE_IP, [ip])).length === 1;
}

async function insertPrefix(tx: DbHandle, child: Prefix, parent: Prefix, networkId: string): Promise<boolean> {
  const res = await tx.execute(sql`
    insert into prefixes (prefix, network_id, family, scope)
    values (${formatPrefix(child)}::cidr, ${networkId}, ${child.family}, ${formatPrefix(parent)}::cidr)
    on conflict do nothing
    returning prefix`);
  return rowsOf(res).length === 1;
}

/** The free child slots of `length` in `parent`, from the children that exist now. */
async function freeSlots(tx: DbHandle, parent: Prefix, length: number, max: number): Promise<Prefix[]> {
  const res = await tx.execute(sql`select prefix::text as prefix from prefixes where scope = ${formatPrefix(parent)}::cidr order by prefix`);
  const taken = rowsOf(res).map((r) => parsePrefix(r.prefix as string) as Prefix);
  const slot = 1n << BigInt((parent.family === 4 ? 32 : 128) - length);
  const free: Prefix[] = [];
  let cursor = parent.network;
  const end = parent.network + childCount(parent, length) * slot;
  const push = (from: bigint, to: bigint) => {
    // Align `from` up to the child size, then take whole slots that end before `to`.
    for (let a = ((from + slot - 1n) / slot) * slot; a + slot <= to && free.length < max; a += slot) {
      free.push({ family: parent.family, network: a, length });
    }
  };
  for (const t of taken) {
    push(cursor, t.network);
    const tEnd = t.network + (1n << BigInt((parent.family === 4 ? 32 : 128) - t.length));
    if (tEnd > cursor) cursor = tEnd;
    if (free.length >= max) return free;
  }
  push(cursor, end);
  return free;
}

/**
 * Carves a free child prefix of `length` out of `parent` and records it for
 * `networkId`. Huge spaces (a /48 holds 65536 /64s) get random slots first;
 * otherwise, and when random picks keep colliding, the existing children are
 * read once to list free slots, one of which is picked at random.
 */
export async function acquireChildPrefix(tx: DbHandle, parent: Prefix, length: number, networkId: string): Promise<Prefix | undefined> {
  const slots = childCount(parent, length);
  if (slots >= RANDOM_FIRST / 16n) {
    for (let i = 0; i < RANDOM_TRIES; i++) {
      const child = childAt(parent, length, randomBelow(slots));
      if (await insertPrefix(tx, child, parent, networkId)) return child;
    }
  }
  for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
    const free = await freeSlots(tx, parent, length, 256);
    if (free.length === 0) return undefined;
    const child = free[Number(randomBelow(BigInt(free.length)))]!;
    if (await insertPrefix(tx, child, parent, networkId)) return child;
  }
  return undefined;
}

/** Claims one given child prefix of `parent`; false when it overlaps one already carved out. */
export async function acquireSpecificChildPrefix(tx: DbHandle, parent: Prefix, child: Prefix, networkId: string): Promise<boolean> {
  return insertPrefix(tx, child, parent, networkId);
}

/** Records a top-level prefix of a network; false when it overlaps an existing one. */
export async function addTopLevelPrefix(tx: DbHandle, p: Prefix, networkId: string): Promise<boolean> {
  const whole: Prefix = { family: p.family, network: 0n, length: 0 };
  return insertPrefix(tx, p, whole, networkId);
}

/** Releases a child or top-level prefix; refused by the database while addresses live in it. */
export async function releasePrefix(tx: DbHandle, p: string): Promise<boolean> {
  const res = await tx.execute(sql`delete from prefixes where prefix = ${p}::cidr returning prefix`);
  return rowsOf(res).length === 1;
}

/** The first free value at or after `start` claimed for `owner`; false if none is free from there on, true if one was lost to a race. */
async function claimPoolFrom(tx: DbHandle, tbl: SQL, column: SQL, start: number, max: number, owner: string): Promise<number | boolean> {
  const res = await tx.execute(sql`
    with candidate as (
      select case
        when not exists (select 1 from ${tbl} where ${column} = ${start}::bigint) then ${start}::bigint
        else (select w.v + 1 from (
                select ${column} as v, lead(${column}) over (order by ${column}) as nxt from ${tbl}
                where ${column} >= ${start}::bigint order by ${column}) w
              where w.nxt is null or w.nxt <> w.v + 1
              limit 1)
      end as n
    ), claimed as (
      insert into ${tbl} select n, ${owner} from candidate where n <= ${max}::bigint
      on conflict do nothing returning ${column} as n
    )
    select (select n <= ${max}::bigint from candidate) as found, (select n from claimed) as claimed`);
  const row = rowsOf(res)[0]!;
  if (row.claimed !== null && row.claimed !== undefined) return Number(row.claimed);
  return row.found === true;
}

/** A pool of integers [min, max] kept as one row per taken value in `table`. */
/** The common case, a random free number, as named statements: parsed and planned once per connection. */
const POOL_INSERT: Record<"vrfs" | "asns", Statement> = {
  vrfs: { name: "ipam_insert_vrf", text: "insert into vrfs values ($1, $2) on conflict do nothing returning vrf as n" },
  asns: { name: "ipam_insert_asn", text: "insert into asns values ($1, $2) on conflict do nothing returning asn as n" },
};

async function acquireFromPool(tx: DbHandle, table: "vrfs" | "asns", min: number, max: number, owner: string): Promise<number | undefined> {
  const column = sql.raw(table === "vrfs" ? "vrf" : "asn");
  const tbl = sql.raw(table);
  const span = BigInt(max - min + 1);
  for (let i = 0; i < RANDOM_TRIES; i++) {
    const n = min + Number(randomBelow(span));
    if ((await run(tx, POOL_INSERT[table], [n, owner])).length === 1) return n;
  }
  // Crowded: a gap search from a random start (wrapping once), like addresses; retried on a lost race.
  for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
    const start = min + Number(randomBelow(span));
    let got = await claimPoolFrom(tx, tbl, column, start, max, owner);
    if (typeof got === "number") return got;
    if (got === false && start !== min) {
      got = await claimPoolFrom(tx, tbl, column, min, max, owner);
      if (typeof got === "number") return got;
    }
    if (got === false) return undefined;
  }
  return undefined;
}

export const VRF_MIN = 1;
export const VRF_MAX = 131072;
export const ASN_BASE = 4210000000;
export const ASN_POOL = 131072;

/** Claims a VRF id (doubles as VNI) for `owner`, or throws ResourceExhausted. */
export async function acquireVrf(tx: DbHandle, owner: string): Promise<number> {
  const vrf = await acquireFromPool(tx, "vrfs", VRF_MIN, VRF_MAX, owner);
  if (vrf === undefined) throw exhausted("no free VRF left (pool 1..131072)");
  return vrf;
}

/** Claims a specific VRF; false when it is taken. */
export async function acquireSpecificVrf(tx: DbHandle, vrf: number, owner: string): Promise<boolean> {
  const res = await tx.execute(sql`insert into vrfs values (${vrf}, ${owner}) on conflict do nothing returning vrf`);
  return rowsOf(res).length === 1;
}

export async function releaseVrf(tx: DbHandle, vrf: number): Promise<boolean> {
  const res = await tx.execute(sql`delete from vrfs where vrf = ${vrf} returning vrf`);
  return rowsOf(res).length === 1;
}

/** Claims a private ASN (4210000000 + n) for `owner`, or throws ResourceExhausted. */
export async function acquireAsn(tx: DbHandle, owner: string): Promise<number> {
  const asn = await acquireFromPool(tx, "asns", ASN_BASE + 1, ASN_BASE + ASN_POOL, owner);
  if (asn === undefined) throw exhausted(`no free ASN left (pool ${ASN_BASE + 1}..${ASN_BASE + ASN_POOL})`);
  return asn;
}

/** A random ASN of the pool, for a caller that claims it in a statement of its own (see machine allocation). */
export const randomAsn = (): number => ASN_BASE + 1 + Number(randomBelow(BigInt(ASN_POOL)));

export async function releaseAsn(tx: DbHandle, asn: number): Promise<boolean> {
  const res = await tx.execute(sql`delete from asns where asn = ${asn} returning asn`);
  return rowsOf(res).length === 1;
}
