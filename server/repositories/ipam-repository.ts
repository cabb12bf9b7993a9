import { sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/database.js";
import type { IpRow, NewIpRow } from "../db/schema/index.js";
import { exhausted } from "../errors.js";
import {
  childAt,
  childCount,
  formatAddress,
  formatPrefix,
  parsePrefix,
  randomBelow,
  usableCount,
  usableRange,
  type Address,
  type Prefix,
} from "../domain/ip-math.js";

/**
 * The IPAM: addresses, child prefixes, VRFs and ASNs handed out as rows whose
 * uniqueness PostgreSQL guarantees (unique keys, the prefix exclusion
 * constraint). Every function takes the caller's transaction handle, so an
 * allocation can join a larger transaction (a machine allocation) and vanish
 * with it on failure. Nothing here scans a whole prefix.
 */

/** Above this many addresses or slots a random pick almost never collides, so it is tried first. */
const RANDOM_FIRST = 1n << 16n;
const RANDOM_TRIES = 8;
/** Attempts after losing a race for a free candidate to a concurrent transaction. */
const RACE_RETRIES = 64;

type Rows = { rows: Record<string, unknown>[] };
const rowsOf = (r: unknown) => (r as Rows).rows;

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

async function insertIp(tx: Db<any>, prefix: string, ip: string, t: IpTemplate): Promise<IpRow | undefined> {
  const res = await tx.execute(sql`
    insert into ips (id, ip, prefix, network_id, project, name, description, type, machine_id, labels)
    values (${t.id}, ${ip}::inet, ${prefix}::cidr, ${t.networkId}, ${t.project}, ${t.name ?? ""}, ${t.description ?? ""},
            ${t.type}, ${t.machineId ?? null}, ${JSON.stringify(t.labels ?? {})}::jsonb)
    on conflict (ip) do nothing
    returning *`);
  const row = rowsOf(res)[0];
  return row ? toIpRow(row) : undefined;
}

/**
 * Finds the first free address at or after `start` in the prefix and claims it,
 * in one round trip: the unique index on ip is walked from `start` only
 * until the first gap. Returns the claimed row, or whether a candidate existed
 * at all (false: nothing free from `start` on).
 */
async function claimFrom(tx: Db<any>, p: Prefix, start: bigint, last: bigint, t: IpTemplate): Promise<IpRow | boolean> {
  const prefix = formatPrefix(p);
  const startIp = formatAddress({ family: p.family, value: start });
  const lastIp = formatAddress({ family: p.family, value: last });
  const res = await tx.execute(sql`
    with candidate as (
      select case
        when not exists (select 1 from ips where ip = ${startIp}::inet) then ${startIp}::inet
        else (select w.ip + 1 from (
                select ip, lead(ip) over (order by ip) as nxt from ips
                where ip >= ${startIp}::inet and ip <= ${lastIp}::inet
                order by ip) w
              where w.nxt is null or w.nxt <> w.ip + 1
              limit 1)
      end as ip
    ), claimed as (
      insert into ips (id, ip, prefix, network_id, project, name, description, type, machine_id, labels)
      select ${t.id}, c.ip, ${prefix}::cidr, ${t.networkId}, ${t.project}, ${t.name ?? ""}, ${t.description ?? ""},
             ${t.type}, ${t.machineId ?? null}, ${JSON.stringify(t.labels ?? {})}::jsonb
      from candidate c where c.ip is not null and c.ip <= ${lastIp}::inet
      on conflict (ip) do nothing
      returning *
    )
    select (select ip <= ${lastIp}::inet from candidate) as found, claimed.* from (select 1) one left join claimed on true`);
  const row = rowsOf(res)[0]!;
  if (row.id) return toIpRow(row);
  return row.found === true;
}

/**
 * Claims a free address in one of `prefixes` (tried in order). Large prefixes
 * (IPv6 /64s) get a random address; smaller ones a gap search from a random
 * start that wraps around once, so concurrent callers rarely want the same
 * address, and a lost race is simply retried.
 */
export async function acquireIp(tx: Db<any>, prefixes: readonly Prefix[], t: IpTemplate, networkLabel: string): Promise<IpRow> {
  for (const p of prefixes) {
    const { first, last } = usableRange(p);
    const count = usableCount(p);
    if (count <= 0n) continue;
    // A random address is a plain insert, the cheapest claim there is; in a
    // prefix that is not nearly full it usually succeeds at once.
    const tries = count >= RANDOM_FIRST ? RANDOM_TRIES : count >= 16n ? 2 : 0;
    for (let i = 0; i < tries; i++) {
      const ip = formatAddress({ family: p.family, value: first + randomBelow(count) });
      const row = await insertIp(tx, formatPrefix(p), ip, t);
      if (row) return row;
    }
    for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
      const start = first + randomBelow(count);
      let got = await claimFrom(tx, p, start, last, t);
      if (typeof got === "object") return got;
      if (got === false && start !== first) {
        // Nothing free after the random start: wrap around to the beginning.
        got = await claimFrom(tx, p, first, last, t);
        if (typeof got === "object") return got;
      }
      if (got === false) break; // this prefix is full
      // A candidate existed but a concurrent transaction took it: try again.
    }
  }
  throw exhausted(`network "${networkLabel}" has no free address left${prefixes.length > 1 ? ` in ${prefixes.map(formatPrefix).join(", ")}` : ""}`);
}

/** Claims one given address; false when it is already taken. */
export async function acquireSpecificIp(tx: Db<any>, prefix: Prefix, address: Address, t: IpTemplate): Promise<IpRow | undefined> {
  return insertIp(tx, formatPrefix(prefix), formatAddress(address), t);
}

/** Releases an address: one statement. Returns whether it was allocated. */
export async function releaseIp(tx: Db<any>, ip: string): Promise<boolean> {
  const res = await tx.execute(sql`delete from ips where ip = ${ip}::inet returning id`);
  return rowsOf(res).length === 1;
}

async function insertPrefix(tx: Db<any>, child: Prefix, parent: Prefix, networkId: string): Promise<boolean> {
  const res = await tx.execute(sql`
    insert into prefixes (prefix, network_id, family, scope)
    values (${formatPrefix(child)}::cidr, ${networkId}, ${child.family}, ${formatPrefix(parent)}::cidr)
    on conflict do nothing
    returning prefix`);
  return rowsOf(res).length === 1;
}

/** The free child slots of `length` in `parent`, from the children that exist now. */
async function freeSlots(tx: Db<any>, parent: Prefix, length: number, max: number): Promise<Prefix[]> {
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
export async function acquireChildPrefix(tx: Db<any>, parent: Prefix, length: number, networkId: string): Promise<Prefix | undefined> {
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
export async function acquireSpecificChildPrefix(tx: Db<any>, parent: Prefix, child: Prefix, networkId: string): Promise<boolean> {
  return insertPrefix(tx, child, parent, networkId);
}

/** Records a top-level prefix of a network; false when it overlaps an existing one. */
export async function addTopLevelPrefix(tx: Db<any>, p: Prefix, networkId: string): Promise<boolean> {
  const whole: Prefix = { family: p.family, network: 0n, length: 0 };
  return insertPrefix(tx, p, whole, networkId);
}

/** Releases a child or top-level prefix; refused by the database while addresses live in it. */
export async function releasePrefix(tx: Db<any>, p: string): Promise<boolean> {
  const res = await tx.execute(sql`delete from prefixes where prefix = ${p}::cidr returning prefix`);
  return rowsOf(res).length === 1;
}

/** The first free value at or after `start` claimed for `owner`; false if none is free from there on, true if one was lost to a race. */
async function claimPoolFrom(tx: Db<any>, tbl: SQL, column: SQL, start: number, max: number, owner: string): Promise<number | boolean> {
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
async function acquireFromPool(tx: Db<any>, table: "vrfs" | "asns", min: number, max: number, owner: string): Promise<number | undefined> {
  const column = sql.raw(table === "vrfs" ? "vrf" : "asn");
  const tbl = sql.raw(table);
  const span = BigInt(max - min + 1);
  for (let i = 0; i < RANDOM_TRIES; i++) {
    const n = min + Number(randomBelow(span));
    const res = await tx.execute(sql`insert into ${tbl} values (${n}, ${owner}) on conflict do nothing returning ${column} as n`);
    if (rowsOf(res).length === 1) return n;
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
export async function acquireVrf(tx: Db<any>, owner: string): Promise<number> {
  const vrf = await acquireFromPool(tx, "vrfs", VRF_MIN, VRF_MAX, owner);
  if (vrf === undefined) throw exhausted("no free VRF left (pool 1..131072)");
  return vrf;
}

/** Claims a specific VRF; false when it is taken. */
export async function acquireSpecificVrf(tx: Db<any>, vrf: number, owner: string): Promise<boolean> {
  const res = await tx.execute(sql`insert into vrfs values (${vrf}, ${owner}) on conflict do nothing returning vrf`);
  return rowsOf(res).length === 1;
}

export async function releaseVrf(tx: Db<any>, vrf: number): Promise<boolean> {
  const res = await tx.execute(sql`delete from vrfs where vrf = ${vrf} returning vrf`);
  return rowsOf(res).length === 1;
}

/** Claims a private ASN (4210000000 + n) for `owner`, or throws ResourceExhausted. */
export async function acquireAsn(tx: Db<any>, owner: string): Promise<number> {
  const asn = await acquireFromPool(tx, "asns", ASN_BASE + 1, ASN_BASE + ASN_POOL, owner);
  if (asn === undefined) throw exhausted(`no free ASN left (pool ${ASN_BASE + 1}..${ASN_BASE + ASN_POOL})`);
  return asn;
}

export async function releaseAsn(tx: Db<any>, asn: number): Promise<boolean> {
  const res = await tx.execute(sql`delete from asns where asn = ${asn} returning asn`);
  return rowsOf(res).length === 1;
}
