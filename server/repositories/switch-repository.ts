import { Code, ConnectError } from "@connectrpc/connect";
import { and, asc, eq, getTableColumns, inArray, ne, type SQL, sql } from "drizzle-orm";
import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import { machineConnections, machines, type NewSwitchRow, networks, prefixes, type StoredHardware, type StoredSwitchSync, type SwitchRow, switches } from "../db/schema/index.js";
import { type AllocationView, confirmToggles, type SwitchConfigInput } from "../domain/switch-config.js";
import type { PortConnection } from "../domain/switch-ports.js";
import type { Connection } from "../domain/switch-wiring.js";
import { notFound } from "../errors.js";
import { type PageRequest, toPage } from "./paging.js";
import { getById, listPage, updateVersioned } from "./versioned.js";

const KIND = "switch";

export type ConnectionRow = typeof machineConnections.$inferSelect;

export const switchRepository = {
  /** Creates or updates a switch; `created` tells which. */
  async upsert(tx: DbHandle, row: NewSwitchRow): Promise<{ row: SwitchRow; created: boolean }> {
    const { id, ...rest } = row;
    const [saved] = await tx
      .insert(switches)
      .values(row)
      .onConflictDoUpdate({ target: switches.id, set: { ...rest, version: sql`${switches.version} + 1`, updatedAt: sql`now()` } })
      // xmax is 0 only for a row this statement inserted (not one it updated).
      .returning({ ...getTableColumns(switches), inserted: sql<boolean>`(xmax = 0)` });
    const { inserted, ...switchRow } = saved!;
    return { row: switchRow as SwitchRow, created: inserted };
  },

  ofPartition: (db: DbHandle, partition: string): Promise<SwitchRow[]> => db.select().from(switches).where(eq(switches.partitionId, partition)),

  /** Replaces the machine's cabling; a port re-cabled to this machine is taken over. */
  async replaceConnections(tx: DbHandle, machineId: string, connections: Connection[]): Promise<void> {
    await tx.delete(machineConnections).where(eq(machineConnections.machineId, machineId));
    if (connections.length === 0) return;
    await tx
      .insert(machineConnections)
      .values(connections.map((c) => ({ switchId: c.switchId, switchPort: c.switchPort, machineId, machineNic: c.machineNic })))
      .onConflictDoUpdate({
        target: [machineConnections.switchId, machineConnections.switchPort],
        set: { machineId: sql`excluded.machine_id`, machineNic: sql`excluded.machine_nic` },
      });
  },

  async connectionsOf(db: DbHandle, machineId: string) {
    return db.select().from(machineConnections).where(eq(machineConnections.machineId, machineId)).orderBy(machineConnections.switchId);
  },
};

/** What the operator's switch service and replacement registration need beyond registration. */
export const switchAdminRepository = {
  get: (db: DbHandle, id: string): Promise<SwitchRow> => getById(db, switches, KIND, id),

  async find(db: DbHandle, id: string): Promise<SwitchRow | undefined> {
    return (await db.select().from(switches).where(eq(switches.id, id)))[0];
  },

  async list(db: DbHandle, filter: { partition?: string; rack?: string }, page: PageRequest) {
    const conditions: SQL[] = [];
    if (filter.partition !== undefined) conditions.push(eq(switches.partitionId, filter.partition));
    if (filter.rack !== undefined) conditions.push(eq(switches.rackId, filter.rack));
    return toPage(await listPage(db, switches, page, conditions.length > 0 ? and(...conditions) : undefined), page.limit, (r) => r.id);
  },

  /** The other switches of a rack. */
  async rackMates(db: DbHandle, sw: { id: string; partitionId: string; rackId: string }): Promise<SwitchRow[]> {
    return db
      .select()
      .from(switches)
      .where(and(eq(switches.partitionId, sw.partitionId), eq(switches.rackId, sw.rackId), ne(switches.id, sw.id)))
      .orderBy(asc(switches.id));
  },

  /**
   * Locks switches in id order (so two transactions never wait on each other
   * crosswise). FOR UPDATE, not FOR NO KEY UPDATE: it also holds back new
   * connections to them, whose foreign key check needs a share lock.
   */
  async lock(tx: DbHandle, ids: readonly string[]): Promise<Map<string, SwitchRow>> {
    const unique = [...new Set(ids)].sort();
    const rows = unique.length === 0 ? [] : await tx.select().from(switches).where(inArray(switches.id, unique)).orderBy(asc(switches.id)).for("update");
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const id of unique) if (!byId.has(id)) throw notFound(KIND, id);
    return byId;
  },

  /**
   * The switch, locked FOR UPDATE as `lock` does (undefined when there is none), with the ports that have machines
   * on them, in one statement: the common re-registration needs nothing
   * more. The ports are read in the statement's snapshot, taken before the
   * lock was granted: a connection committed while the lock was awaited is
   * missing, so whoever must not miss one reads them again under the lock.
   */
  async lockWithCabledPorts(tx: DbHandle, id: string): Promise<{ sw: SwitchRow; cabledPorts: string[] } | undefined> {
    const [row] = await tx
      .select({
        ...getTableColumns(switches),
        cabledPorts: sql<string[]>`coalesce((select array_agg(c.switch_port) from ${machineConnections} c where c.switch_id = "switches"."id"), '{}')`,
      })
      .from(switches)
      .where(eq(switches.id, id))
      .for("update");
    if (!row) return undefined;
    const { cabledPorts, ...sw } = row;
    return { sw: sw as SwitchRow, cabledPorts };
  },

  /**
   * Locks the machines in id order, as every machine transaction does first:
   * their port VRFs and cabling change only under that lock.
   */
  async lockMachines(tx: DbHandle, ids: readonly string[]): Promise<{ id: string; hardware: StoredHardware | null }[]> {
    const unique = [...new Set(ids)].sort();
    if (unique.length === 0) return [];
    return tx.select({ id: machines.id, hardware: machines.hardware }).from(machines).where(inArray(machines.id, unique)).orderBy(asc(machines.id)).for("update");
  },

  /**
   * Locks what re-cabling switches touches: first the machines cabled to them,
   * then the switches, in the order machine transactions take them (a machine,
   * then the switches its new connections point at). A machine cabled to them
   * in between was not locked in that order, so the caller is told to retry.
   */
  async lockCabling(tx: DbHandle, switchIds: readonly string[]) {
    const seen = await switchAdminRepository.connectionsOfSwitches(tx, switchIds);
    const machineRows = await switchAdminRepository.lockMachines(
      tx,
      seen.map((c) => c.machineId),
    );
    const switchRows = await switchAdminRepository.lock(tx, switchIds);
    const connections = await switchAdminRepository.connectionsOfSwitches(tx, switchIds);
    const locked = new Set(machineRows.map((m) => m.id));
    if (connections.some((c) => !locked.has(c.machineId))) {
      throw new ConnectError(`the cabling of switch ${switchIds.map((id) => `"${id}"`).join(" or ")} changed meanwhile; retry`, Code.Aborted);
    }
    return { switches: switchRows, connections, machines: new Map(machineRows.map((m) => [m.id, m])) };
  },

  async connectionsOfSwitches(db: DbHandle, ids: readonly string[]): Promise<ConnectionRow[]> {
    if (ids.length === 0) return [];
    return db
      .select()
      .from(machineConnections)
      .where(inArray(machineConnections.switchId, [...ids]))
      .orderBy(asc(machineConnections.switchId), asc(machineConnections.switchPort));
  },

  update: (db: DbHandle, id: string, version: number, patch: Partial<NewSwitchRow>): Promise<SwitchRow> => updateVersioned(db, switches, KIND, id, version, patch),

  /** Writes a switch the caller holds locked; the version still grows so readers see the change. */
  async save(tx: DbHandle, id: string, patch: Partial<NewSwitchRow>): Promise<SwitchRow> {
    const [row] = await tx
      .update(switches)
      .set({ ...patch, version: sql`${switches.version} + 1`, updatedAt: sql`now()` })
      .where(eq(switches.id, id))
      .returning();
    if (!row) throw notFound(KIND, id);
    return row;
  },

  /** Deletes the switch; its connections go with it (foreign key cascade). */
  async delete(tx: DbHandle, id: string): Promise<void> {
    await tx.delete(switches).where(eq(switches.id, id));
  },

  /**
   * Moves connections in place (same rows, new switch and port), so that a
   * VRF change waiting on one of these rows lands on the moved row.
   */
  async moveConnections(tx: DbHandle, from: string, to: string, moves: readonly { fromPort: string; toPort: string }[]): Promise<void> {
    for (const m of moves) {
      await tx
        .update(machineConnections)
        .set({ switchId: to, switchPort: m.toPort })
        .where(and(eq(machineConnections.switchId, from), eq(machineConnections.switchPort, m.fromPort)));
    }
  },

  /** Replaces every connection of one switch. */
  async setConnectionsOfSwitch(tx: DbHandle, switchId: string, connections: readonly PortConnection[]): Promise<void> {
    await tx.delete(machineConnections).where(eq(machineConnections.switchId, switchId));
    if (connections.length === 0) return;
    await tx.insert(machineConnections).values(connections.map((c) => ({ switchId, switchPort: c.port, machineId: c.machineId, machineNic: c.machineNic, vrf: c.vrf })));
  },

  async setMachineHardware(tx: DbHandle, machineId: string, hardware: StoredHardware): Promise<void> {
    await tx
      .update(machines)
      .set({ hardware, version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(eq(machines.id, machineId));
  },
};

export const machineRegistrationRepository = {
  async save(tx: DbHandle, id: string, fields: { sizeId: string; rackId: string; hardware: StoredHardware; bios: { vendor: string; version: string; date: string } }): Promise<void> {
    await tx
      .update(machines)
      .set({ ...fields, version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(eq(machines.id, id));
  },
};

/** What a switch's session reads and writes: its desired config's inputs and metal-core's sync reports. */
export const switchSessionRepository = {
  /** The switch's config generation (its version); undefined when the switch is gone. */
  async generation(db: DbHandle, id: string): Promise<number | undefined> {
    return (await db.select({ version: switches.version }).from(switches).where(eq(switches.id, id)))[0]?.version;
  },

  /** The desired config's inputs of one switch (see configInputs); undefined when the switch is gone. */
  async configInput(db: DbHandle, id: string): Promise<SwitchConfigInput | undefined> {
    return (await switchSessionRepository.configInputs(db, [id])).get(id);
  },

  /**
   * Everything the desired configs of these switches are computed from, in
   * two statements whatever their number: the switches with their cabling and
   * the cabled machines' allocations (one snapshot, so each switch's inputs
   * are exactly as new as the generation they are labelled with), then the
   * networks those allocations use. A newer change brings a newer generation
   * later; a network's prefixes never change under an allocation that uses
   * it. Switches that are gone are missing from the map.
   */
  async configInputs(db: DbHandle, ids: readonly string[]): Promise<Map<string, SwitchConfigInput>> {
    if (ids.length === 0) return new Map();
    // The outer switch is named in full: inside the subquery, a bare "id" would be the machine's.
    type Cabled = { port: string; machineId: string; vrf: string | null; allocation: AllocationView | null };
    const rows = await db
      .select({
        id: switches.id,
        version: switches.version,
        nics: switches.nics,
        cabled: sql<Cabled[]>`coalesce((
          select json_agg(json_build_object(
            'port', c.switch_port, 'machineId', c.machine_id, 'vrf', c.vrf,
            'allocation', case when m.allocation is null then null else json_build_object('role', m.allocation->'role', 'networks', m.allocation->'networks') end
          ) order by c.switch_port)
          from ${machineConnections} c join ${machines} m on m.id = c.machine_id
          where c.switch_id = "switches"."id"), '[]'::json)`,
      })
      .from(switches)
      // One array parameter: the statement is the same text for any number of switches.
      .where(sql`${switches.id} = any(${sql.param([...new Set(ids)])}::text[])`);
    const networkIds = [...new Set(rows.flatMap((sw) => sw.cabled.flatMap((c) => c.allocation?.networks.map((n) => n.network) ?? [])))];
    const networkRows =
      networkIds.length === 0
        ? []
        : await db
            .select({ id: networks.id, kind: networks.kind, prefixes: sql<string[]>`coalesce(array_agg(${prefixes.prefix}::text) filter (where ${prefixes.prefix} is not null), '{}')` })
            .from(networks)
            .leftJoin(prefixes, eq(prefixes.networkId, networks.id))
            .where(sql`${networks.id} = any(${sql.param(networkIds)}::text[])`)
            .groupBy(networks.id, networks.kind);
    const byNetwork = new Map(networkRows.map((n) => [n.id, { kind: n.kind, prefixes: n.prefixes }]));
    const out = new Map<string, SwitchConfigInput>();
    for (const sw of rows) {
      const used = new Set(sw.cabled.flatMap((c) => c.allocation?.networks.map((n) => n.network) ?? []));
      out.set(sw.id, {
        switchId: sw.id,
        generation: sw.version,
        nics: sw.nics,
        connections: sw.cabled.map((c) => ({ port: c.port, machineId: c.machineId, vrf: c.vrf })),
        allocations: new Map(sw.cabled.map((c) => [c.machineId, c.allocation])),
        networks: new Map([...used].flatMap((n) => (byNetwork.has(n) ? [[n, byNetwork.get(n)!] as const] : []))),
      });
    }
    return out;
  },

  /**
   * Stores a sync report; false when the switch is gone. The version stays: a
   * report changes no desired config (a confirmed toggle renders the same),
   * and bumping it would make every report trigger a resend.
   */
  async recordSync(db: DbHandle, id: string, report: SyncReport): Promise<boolean> {
    const [stamped] = await switchSessionRepository.stampSyncs(db, [{ id, report }]);
    return stamped === "ports" ? switchSessionRepository.recordSyncWithPorts(db, id, report) : stamped === "stamped";
  },

  /**
   * The first half of recordSync for many switches at once. Most reports
   * confirm nothing new about the ports; those only stamp the sync, a write
   * that cannot lose anyone's port update, so they share one read of the
   * port states and one UPDATE, without a transaction ("stamped", or "gone"
   * for a switch that is not there). A report that changes port states is
   * left alone ("ports"): the caller stores it with recordSyncWithPorts.
   * Reports of the same switch given together are stamped in their order.
   */
  async stampSyncs(db: DbHandle, reports: readonly { id: string; report: SyncReport }[]): Promise<SyncStamp[]> {
    if (reports.length === 0) return [];
    // A switch seen twice (an old and a new session at once): its later reports go after its first, one statement each.
    const seen = new Set<string>();
    const first: number[] = [];
    const later: number[] = [];
    reports.forEach((r, i) => {
      (seen.has(r.id) ? later : first).push(i);
      seen.add(r.id);
    });
    const out: SyncStamp[] = new Array(reports.length).fill("gone");
    const ids = first.map((i) => reports[i]!.id);
    const current = new Map(
      (
        await db
          .select({ id: switches.id, nics: switches.nics })
          .from(switches)
          .where(sql`${switches.id} = any(${sql.param(ids)}::text[])`)
      ).map((r) => [r.id, r.nics]),
    );
    const stampOnly: number[] = [];
    for (const i of first) {
      const nics = current.get(reports[i]!.id);
      if (!nics) continue;
      if (confirmToggles(nics, reports[i]!.report.ports).changed) out[i] = "ports";
      else stampOnly.push(i);
    }
    if (stampOnly.length > 0) {
      const values = stampOnly.map((i) => ({ id: reports[i]!.id, sync: reports[i]!.report.sync, failed: reports[i]!.report.failed }));
      const res = (await db.execute(sql`
        update ${switches} set last_sync = v.sync, last_sync_error = case when v.failed then v.sync else ${switches.lastSyncError} end
        from jsonb_to_recordset(${JSON.stringify(values)}::jsonb) as v(id text, sync jsonb, failed boolean)
        where ${switches.id} = v.id
        returning ${switches.id}`)) as unknown as { rows: { id: string }[] };
      const stamped = new Set(res.rows.map((r) => r.id));
      for (const i of stampOnly) out[i] = stamped.has(reports[i]!.id) ? "stamped" : "gone";
    }
    if (later.length > 0) {
      const rest = await switchSessionRepository.stampSyncs(
        db,
        later.map((i) => reports[i]!),
      );
      later.forEach((i, k) => (out[i] = rest[k]!));
    }
    return out;
  },

  /** A report that changes port states, under the row lock: a toggle written meanwhile is merged, not overwritten. */
  async recordSyncWithPorts(db: DbHandle, id: string, report: SyncReport): Promise<boolean> {
    return inTransaction(db, async (tx) => {
      const sw = (await tx.select({ nics: switches.nics }).from(switches).where(eq(switches.id, id)).for("update"))[0];
      if (!sw) return false;
      await tx
        .update(switches)
        .set({ nics: confirmToggles(sw.nics, report.ports).nics, lastSync: report.sync, ...(report.failed ? { lastSyncError: report.sync } : {}) })
        .where(eq(switches.id, id));
      return true;
    });
  },
};

/** What stampSyncs did with a report. */
export type SyncStamp = "stamped" | "gone" | "ports";

export interface SyncReport {
  sync: StoredSwitchSync;
  failed: boolean;
  /** The port states metal-core confirmed. */
  ports: ReadonlyMap<string, "up" | "down" | "unknown">;
}

/** The row types callers of this repository name (handlers never import the schema). */
export type { NewSwitchRow } from "../db/schema/index.js";
