import { and, count, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { ips, type NetworkRow, type NewNetworkRow, networks, prefixes } from "../db/schema/index.js";
import { type PageRequest, toPage } from "./paging.js";
import { deleteById, getById, insertUnique, listPage, lockById, updateVersioned } from "./versioned.js";

export interface NetworkFilter {
  kind?: number;
  partition?: string;
  project?: string;
  /** Any of these projects (a tenant's scope, see repositories/tenant). */
  projects?: readonly string[];
}

/** Stored counts behind a network's consumption, per address family. */
export interface NetworkUsage {
  usedIps: Record<4 | 6, number>;
  usedPrefixes: Record<4 | 6, number>;
}

export const networkRepository = {
  get: (db: DbHandle, id: string): Promise<NetworkRow> => getById(db, networks, "network", id),

  /** Reads and locks the network until the transaction ends. */
  lock: (tx: DbHandle, id: string): Promise<NetworkRow> => lockById(tx, networks, "network", id),

  async list(db: DbHandle, filter: NetworkFilter, page: PageRequest) {
    const where: SQL[] = [];
    if (filter.kind !== undefined) where.push(eq(networks.kind, filter.kind));
    if (filter.partition !== undefined) where.push(eq(networks.partitionId, filter.partition));
    if (filter.project !== undefined) where.push(eq(networks.project, filter.project));
    if (filter.projects !== undefined) where.push(inArray(networks.project, [...filter.projects]));
    return toPage(await listPage(db, networks, page, and(...where)), page.limit, (r) => r.id);
  },

  /** Networks of one kind in a partition, locked: "one super network per partition" holds under concurrency. */
  async lockKindInPartition(tx: DbHandle, kind: number, partition: string): Promise<NetworkRow[]> {
    await tx.execute(sql`select pg_advisory_xact_lock(7104, hashtext(${`${kind}/${partition}`}))`);
    return tx
      .select()
      .from(networks)
      .where(and(eq(networks.kind, kind), eq(networks.partitionId, partition)));
  },

  create: (tx: DbHandle, row: NewNetworkRow): Promise<NetworkRow> => insertUnique(tx, networks, "network", row.id, row),
  update: (db: DbHandle, id: string, version: number, patch: Partial<NewNetworkRow>): Promise<NetworkRow> => updateVersioned(db, networks, "network", id, version, patch),
  /** Deletes the network; its prefixes go with it (the database refuses while IPs live in them). */
  delete: (tx: DbHandle, id: string): Promise<NetworkRow> => deleteById(tx, networks, "network", id),

  /** The prefixes of each network, as CIDR strings, ordered. */
  async prefixesOf(db: DbHandle, ids: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>(ids.map((id) => [id, []]));
    if (ids.length === 0) return out;
    const rows = await db
      .select({ networkId: prefixes.networkId, prefix: sql<string>`${prefixes.prefix}::text` })
      .from(prefixes)
      .where(inArray(prefixes.networkId, ids))
      .orderBy(prefixes.family, prefixes.prefix);
    for (const r of rows) out.get(r.networkId)!.push(r.prefix);
    return out;
  },

  async childNetworkCount(tx: DbHandle, id: string): Promise<number> {
    const [r] = await tx.select({ n: count() }).from(networks).where(eq(networks.parentNetworkId, id));
    return r?.n ?? 0;
  },

  async ipCount(tx: DbHandle, networkId: string): Promise<number> {
    const [r] = await tx.select({ n: count() }).from(ips).where(eq(ips.networkId, networkId));
    return r?.n ?? 0;
  },

  /** Used IPs and child prefixes per network and family, in two grouped queries for a whole page. */
  async usage(db: DbHandle, ids: string[]): Promise<Map<string, NetworkUsage>> {
    const out = new Map<string, NetworkUsage>(ids.map((id) => [id, { usedIps: { 4: 0, 6: 0 }, usedPrefixes: { 4: 0, 6: 0 } }]));
    if (ids.length === 0) return out;
    const ipRows = await db
      .select({ id: ips.networkId, family: sql<number>`family(${ips.ip})`, n: count() })
      .from(ips)
      .where(inArray(ips.networkId, ids))
      .groupBy(ips.networkId, sql`family(${ips.ip})`);
    for (const r of ipRows) out.get(r.id)!.usedIps[Number(r.family) as 4 | 6] = r.n;
    const kidRows = await db
      .select({ id: networks.parentNetworkId, family: prefixes.family, n: count() })
      .from(networks)
      .innerJoin(prefixes, eq(prefixes.networkId, networks.id))
      .where(inArray(networks.parentNetworkId, ids))
      .groupBy(networks.parentNetworkId, prefixes.family);
    for (const r of kidRows) out.get(r.id!)!.usedPrefixes[r.family as 4 | 6] = r.n;
    return out;
  },

  /** The network whose top-level prefix overlaps `cidr`, for a helpful error message. */
  async overlapping(tx: DbHandle, cidr: string): Promise<string | undefined> {
    const res = (await tx.execute(sql`
      select network_id from prefixes where prefix && ${cidr}::cidr and masklen(scope) = 0 limit 1`)) as unknown as { rows: { network_id: string }[] };
    return res.rows[0]?.network_id;
  },
};

/** Per-project quota counts, taken under a per-project advisory lock so concurrent allocations cannot both pass. */
export const quotaRepository = {
  async lockProject(tx: DbHandle, project: string): Promise<void> {
    await tx.execute(sql`select pg_advisory_xact_lock(7103, hashtext(${project}))`);
  },
  async networksOf(tx: DbHandle, project: string): Promise<number> {
    const [r] = await tx.select({ n: count() }).from(networks).where(eq(networks.project, project));
    return r?.n ?? 0;
  },
  async ipsOf(tx: DbHandle, project: string): Promise<number> {
    const [r] = await tx.select({ n: count() }).from(ips).where(eq(ips.project, project));
    return r?.n ?? 0;
  },
};

/** The row types callers of this repository name (handlers never import the schema). */
export type { NetworkRow, NewNetworkRow } from "../db/schema/index.js";
