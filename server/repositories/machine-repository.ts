import { and, desc, eq, gt, inArray, type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { asns, type BmcCommandRow, bmcCommands, ips, type MachineEventsRow, type MachineRow, machineConnections, machineEvents, machines, type StoredBmc, switches } from "../db/schema/index.js";
import { IpKind } from "../domain/network.js";
import { usageKey } from "../domain/size-reservation-usage.js";
import { notFound } from "../errors.js";
import { uuidv7 } from "../ids.js";
import { type PageRequest, toPage } from "./paging.js";
import { type AllocationReferences, allocationReferencesHeld } from "./usage-repository.js";
import { lockById } from "./versioned.js";

export interface MachineFilter {
  partition?: string;
  project?: string;
  /** Any of these projects (a tenant's scope, see repositories/tenant). */
  projects?: readonly string[];
  size?: string;
  rack?: string;
  allocated?: boolean;
  role?: "machine" | "firewall";
}

export const machineRepository = {
  async get(db: DbHandle, id: string): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }> {
    const found = await machineRepository.find(db, id);
    if (!found) throw notFound("machine", id);
    return found;
  },

  /** The machine, locked until the transaction ends; NotFound when there is none. */
  lock: (tx: DbHandle, id: string): Promise<MachineRow> => lockById(tx, machines, "machine", id),

  /** The machine with its events; undefined when there is none. */
  async find(db: DbHandle, id: string): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined } | undefined> {
    const rows = await db.select().from(machines).leftJoin(machineEvents, eq(machineEvents.machineId, machines.id)).where(eq(machines.id, id));
    return rows[0] && { machine: rows[0].machines, events: rows[0].machine_events ?? undefined };
  },

  async list(db: DbHandle, filter: MachineFilter, page: PageRequest) {
    const where: SQL[] = [];
    if (filter.partition !== undefined) where.push(eq(machines.partitionId, filter.partition));
    if (filter.project !== undefined) where.push(eq(machines.project, filter.project));
    if (filter.projects !== undefined) where.push(inArray(machines.project, [...filter.projects]));
    if (filter.size !== undefined) where.push(eq(machines.sizeId, filter.size));
    if (filter.rack !== undefined) where.push(eq(machines.rackId, filter.rack));
    if (filter.allocated !== undefined) where.push(filter.allocated ? sql`${machines.allocation} is not null` : sql`${machines.allocation} is null`);
    if (filter.role !== undefined) where.push(sql`${machines.allocation}->>'role' = ${filter.role}`);
    if (page.after !== undefined) where.push(gt(machines.id, page.after));
    const rows = await db
      .select()
      .from(machines)
      .leftJoin(machineEvents, eq(machineEvents.machineId, machines.id))
      .where(and(...where))
      .orderBy(machines.id)
      .limit(page.limit + 1);
    return toPage(
      rows.map((r) => ({ machine: r.machines, events: r.machine_events ?? undefined })),
      page.limit,
      (r) => r.machine.id,
    );
  },

  /** Creates bare records for machines not seen before (the first PXE boot of a new machine). */
  async ensure(tx: DbHandle, ids: string[], partition: string): Promise<void> {
    if (ids.length === 0) return;
    await tx
      .insert(machines)
      .values(ids.map((id) => ({ id, partitionId: partition })))
      .onConflictDoNothing();
  },

  /**
   * The machines and their event containers, locked; ids are locked in sorted
   * order so batches cannot deadlock. The containers are read after the locks
   * are held: a read in the locking statement itself would see the container
   * as it was before waiting for the lock, and lose the other writer's events.
   */
  async lockWithEvents(tx: DbHandle, ids: string[]): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }[]> {
    if (ids.length === 0) return [];
    const locked = await tx.select().from(machines).where(inArray(machines.id, ids)).orderBy(machines.id).for("update");
    const containers = await tx.select().from(machineEvents).where(inArray(machineEvents.machineId, ids));
    const byId = new Map(containers.map((c) => [c.machineId, c]));
    return locked.map((machine) => ({ machine, events: byId.get(machine.id) }));
  },

  /** The event container of one machine; undefined before its first event. */
  async eventsOf(db: DbHandle, machineId: string): Promise<MachineEventsRow | undefined> {
    const [row] = await db.select().from(machineEvents).where(eq(machineEvents.machineId, machineId));
    return row;
  },

  async saveEvents(tx: DbHandle, row: MachineEventsRow): Promise<void> {
    const { machineId, ...rest } = row;
    await tx.insert(machineEvents).values(row).onConflictDoUpdate({ target: machineEvents.machineId, set: rest });
  },

  /** Free machines with their event containers, for the resurrection job. */
  async freeWithEvents(tx: DbHandle): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }[]> {
    const rows = await tx.select().from(machines).leftJoin(machineEvents, eq(machineEvents.machineId, machines.id)).where(sql`${machines.allocation} is null`).orderBy(machines.id);
    return rows.map((r) => ({ machine: r.machines, events: r.machine_events ?? undefined }));
  },

  /** All event containers, locked, with whether their machine is allocated, for the liveliness job. */
  async lockAllEvents(tx: DbHandle): Promise<{ events: MachineEventsRow; allocated: boolean }[]> {
    const rows = await tx
      .select({ events: machineEvents, allocated: sql<boolean>`${machines.allocation} is not null` })
      .from(machineEvents)
      .innerJoin(machines, eq(machines.id, machineEvents.machineId))
      .orderBy(machineEvents.machineId)
      .for("update", { of: machineEvents });
    return rows;
  },

  async setLiveliness(tx: DbHandle, machineId: string, liveliness: MachineEventsRow["liveliness"]): Promise<void> {
    await tx.update(machineEvents).set({ liveliness }).where(eq(machineEvents.machineId, machineId));
  },

  /** Takes the job lock for this transaction; false when another replica runs the job right now. */
  async tryJobLock(tx: DbHandle, key: number): Promise<boolean> {
    const res = (await tx.execute(sql`select pg_try_advisory_xact_lock(${key}) as ok`)) as unknown as { rows: { ok: boolean }[] };
    return res.rows[0]?.ok === true;
  },
};

/**
 * THE candidate rule, for allocation by size and by id alike (and for
 * capacity): same partition and size, not locked or tainted by an operator,
 * free, waiting (a Wait stream holds a live lease: allocating and freeing
 * clear the lease, so a freed machine is no candidate until its reclaimed
 * metal-hammer opens a new Wait stream) and alive. Size reservations of
 * other projects are checked on top by the caller, counting these.
 * Callers join `machineEvents` on the machine.
 */
export const candidateCondition = (partition: string, size: string) =>
  and(
    eq(machines.partitionId, partition),
    eq(machines.sizeId, size),
    eq(machines.state, "available"),
    sql`${machines.allocation} is null`,
    sql`${machines.waitingUntil} > now()`,
    eq(machineEvents.liveliness, "Alive"),
  );

/** The allocation side of machines: waiting leases, candidates, allocations. */
export const machineAllocationRepository = {
  /**
   * Starts the waiting lease of a machine whose metal-hammer just opened a
   * Wait stream. Only a free machine waits: the lease of an allocated one is
   * left alone (allocating cleared it), so the lease a new stream starts
   * belongs to the machine's current, reclaimed life.
   */
  async startWaiting(db: DbHandle, id: string, until: Date): Promise<void> {
    await db
      .update(machines)
      .set({ waitingUntil: until })
      .where(and(eq(machines.id, id), sql`${machines.allocation} is null`));
  },

  /**
   * Extends the leases of free machines that hold one, running or expired. A
   * lease that allocating or freeing ended (NULL) is never revived here, so a
   * renewal computed from a stream that has ended meanwhile (an allocation was
   * delivered, the machine was freed and is being reclaimed) cannot make the
   * machine a candidate again; only `startWaiting`, called by a new stream,
   * starts one then. A lease that merely expired (or that the end of another
   * stream expired, see `expireWaiting`) is extended: the machine's hammer
   * still waits here.
   */
  async extendWaitingMany(db: DbHandle, ids: readonly string[], until: Date): Promise<void> {
    if (ids.length === 0) return;
    // The rows are locked in id order first, the order lockWithEvents takes
    // them in: a plain UPDATE locks in scan order, and a renewal racing an
    // event batch over the same machines deadlocked under load.
    const renewable = db
      .select({ id: machines.id })
      .from(machines)
      .where(and(inArray(machines.id, [...ids]), sql`${machines.allocation} is null`, sql`${machines.waitingUntil} is not null`))
      .orderBy(machines.id)
      .for("update");
    await db.update(machines).set({ waitingUntil: until }).where(inArray(machines.id, renewable));
  },

  /** Of the given machines, those that are allocated. */
  async allocatedAmong(db: DbHandle, ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await db
      .select({ id: machines.id })
      .from(machines)
      .where(and(inArray(machines.id, [...ids]), sql`${machines.allocation} is not null`));
    return rows.map((r) => r.id);
  },

  /**
   * The last Wait stream of the machine on this replica ended: its lease ends
   * now, but is not taken away (NULL is for allocating and freeing). A stream
   * the hammer opened meanwhile, here or on another replica, may have started
   * a lease just before this runs: its next renewal extends it again.
   */
  async expireWaiting(db: DbHandle, id: string): Promise<void> {
    await db
      .update(machines)
      .set({ waitingUntil: sql`now()` })
      .where(and(eq(machines.id, id), sql`${machines.waitingUntil} > now()`));
  },

  /**
   * Per rack of a partition and size: how many machines wait to be allocated,
   * how many of the project's machines of the role it holds, and how many of
   * those carry one of the placement tags, in one pass over the machines.
   */
  async rackLoad(tx: DbHandle, partition: string, size: string, project: string, role: string, placementTags: readonly string[]): Promise<{ rack: string; waiting: number; mine: number; mineTagged: number }[]> {
    const mine = sql`${machines.project} = ${project} and ${machines.allocation}->>'role' = ${role}`;
    const tagged = placementTags.length > 0 ? sql`${machines.tags} ?| ${sql.param([...placementTags])}::text[]` : sql`false`;
    const rows = await tx
      .select({
        rack: machines.rackId,
        waiting: sql<number>`(count(*) filter (where ${candidateCondition(partition, size)}))::int`,
        mine: sql<number>`(count(*) filter (where ${mine}))::int`,
        mineTagged: sql<number>`(count(*) filter (where ${mine} and ${tagged}))::int`,
      })
      .from(machines)
      .leftJoin(machineEvents, eq(machineEvents.machineId, machines.id))
      .where(and(eq(machines.partitionId, partition), eq(machines.sizeId, size)))
      .groupBy(machines.rackId);
    return rows.map((r) => ({ rack: r.rack ?? "", waiting: Number(r.waiting), mine: Number(r.mine), mineTagged: Number(r.mineTagged) }));
  },

  /**
   * Locks a candidate: a random one of a rack, or the given machine, by the
   * same candidate rule. In a rack, SKIP LOCKED: a machine another
   * allocation holds right now is passed over, not waited for. By id, the
   * lock is waited for, so the answer reflects the other allocation's
   * outcome (taken by another project reads as unknown, not as busy). Either
   * way the rule is re-checked on the row's newest version. The statement
   * also holds what the allocation refers to (partition, size, image,
   * layout) FOR KEY SHARE; none is found when one of them is gone.
   */
  async lockCandidate(tx: DbHandle, refs: AllocationReferences, pick: { rack: string } | { id: string }): Promise<{ machine: MachineRow; events: MachineEventsRow } | undefined> {
    const { partition, size } = refs;
    const byId = "id" in pick;
    const which = byId ? eq(machines.id, pick.id) : eq(machines.rackId, pick.rack);
    // Named: every allocation runs it, so each connection parses and plans it once.
    const rows = await tx
      .select({ m: machines, e: machineEvents })
      .from(machines)
      .innerJoin(machineEvents, eq(machineEvents.machineId, machines.id))
      // The references are held in the same statement: a concurrent delete of one waits for this allocation.
      .where(and(which, candidateCondition(partition, size), allocationReferencesHeld(refs)))
      .orderBy(sql`random()`)
      .limit(1)
      .for("update", byId ? { of: machines } : { of: machines, skipLocked: true })
      .prepare(byId ? "machines_lock_candidate_by_id_waiting" : "machines_lock_candidate_in_rack_with_events")
      .execute();
    const row = rows[0];
    return row ? { machine: row.m, events: row.e } : undefined;
  },

  /**
   * Locks a random candidate of a rack, waiting for its row lock: the
   * allocation's second pass, when SKIP LOCKED found every candidate locked
   * (event batches and lease renewals lock machine rows briefly too). The
   * candidate is read without a lock and then locked by id in a savepoint;
   * when it is no candidate any more once its lock is granted, the savepoint
   * is rolled back, which releases that lock. So a waiting allocation never
   * holds one machine while it waits for another, and two of them cannot
   * deadlock (waiting for a rack's rows in one statement could: each kept
   * the rows it locked that failed the re-check).
   */
  async lockCandidateWaiting(tx: DbHandle, refs: AllocationReferences, rack: string): Promise<{ machine: MachineRow; events: MachineEventsRow } | undefined> {
    const [pick] = await tx
      .select({ id: machines.id })
      .from(machines)
      .innerJoin(machineEvents, eq(machineEvents.machineId, machines.id))
      .where(and(eq(machines.rackId, rack), candidateCondition(refs.partition, refs.size)))
      .orderBy(sql`random()`)
      .limit(1);
    if (!pick) return undefined;
    const noCandidate = new Error("no candidate once locked");
    try {
      return await tx.transaction(async (savepoint) => {
        const locked = await machineAllocationRepository.lockCandidate(savepoint as unknown as DbHandle, refs, { id: pick.id });
        if (!locked) throw noCandidate;
        return locked;
      });
    } catch (err) {
      if (err === noCandidate) return undefined;
      throw err;
    }
  },

  /**
   * Serialises the allocations of one partition and size while size
   * reservations exist there, so each sees the others' committed machines
   * when it counts what is left for the reserving projects.
   */
  async lockSizePool(tx: DbHandle, partition: string, size: string): Promise<void> {
    await tx.execute(sql`select pg_advisory_xact_lock(7110, hashtext(${`${partition}/${size}`}))`);
  },

  /** How many machines of a partition and size are candidates right now. */
  async candidateCount(tx: DbHandle, partition: string, size: string): Promise<number> {
    const [r] = await tx.select({ n: sql<number>`count(*)::int` }).from(machines).innerJoin(machineEvents, eq(machineEvents.machineId, machines.id)).where(candidateCondition(partition, size));
    return Number(r?.n ?? 0);
  },

  /** Allocated machines per project in a partition and size, for size reservations. */
  async usedByProject(tx: DbHandle, partition: string, size: string): Promise<Map<string, number>> {
    const rows = await tx
      .select({ project: machines.project, n: sql<number>`count(*)::int` })
      .from(machines)
      .where(and(eq(machines.partitionId, partition), eq(machines.sizeId, size), sql`${machines.project} is not null`))
      .groupBy(machines.project);
    return new Map(rows.map((r) => [r.project!, Number(r.n)]));
  },

  /** Allocated machines per partition, size and project (keys from `usageKey`). */
  async allocationCounts(db: DbHandle): Promise<Map<string, number>> {
    const rows = await db
      .select({ partition: machines.partitionId, size: machines.sizeId, project: machines.project, n: sql<number>`count(*)::int` })
      .from(machines)
      .where(sql`${machines.project} is not null`)
      .groupBy(machines.partitionId, machines.sizeId, machines.project);
    return new Map(rows.map((r) => [usageKey(r.partition ?? "", r.size ?? "", r.project!), Number(r.n)]));
  },

  async countOfProject(tx: DbHandle, project: string): Promise<number> {
    const [r] = await tx.select({ n: sql<number>`count(*)::int` }).from(machines).where(eq(machines.project, project));
    return Number(r?.n ?? 0);
  },

  /**
   * Claims `allocation.asn` for the machine and stores the allocation in ONE
   * statement (the common case: a random ASN is almost always free).
   * Undefined when the ASN was taken; the caller then acquires one the slow
   * way and calls `allocate`. Allocating ends the machine's waiting lease
   * (see `release`).
   */
  async allocateClaimingAsn(tx: DbHandle, id: string, allocation: NonNullable<MachineRow["allocation"]>, tags: string[]): Promise<MachineRow | undefined> {
    const claimed = tx.$with("claimed").as(tx.insert(asns).values({ asn: allocation.asn, owner: id }).onConflictDoNothing().returning({ asn: asns.asn }));
    const [row] = await tx
      .with(claimed)
      .update(machines)
      .set({ allocation, project: allocation.project, tags, waitingUntil: null, version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(and(eq(machines.id, id), sql`${machines.allocation} is null`, sql`exists (select 1 from ${claimed})`))
      .returning()
      .prepare("machines_allocate_claiming_asn")
      .execute();
    return row;
  },

  async allocate(tx: DbHandle, id: string, allocation: NonNullable<MachineRow["allocation"]>, tags: string[]): Promise<MachineRow> {
    const [row] = await tx
      .update(machines)
      .set({ allocation, project: allocation.project, tags, waitingUntil: null, version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(and(eq(machines.id, id), sql`${machines.allocation} is null`))
      .returning()
      .prepare("machines_allocate")
      .execute();
    if (!row) throw notFound("free machine", id);
    return row;
  },
};

/** Installation, freeing and BMC commands. */
export const machineLifecycleRepository = {
  async setAllocation(tx: DbHandle, id: string, allocation: NonNullable<MachineRow["allocation"]>, tags?: string[]): Promise<MachineRow> {
    const [row] = await tx
      .update(machines)
      .set({ allocation, ...(tags ? { tags } : {}), version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(eq(machines.id, id))
      .returning();
    if (!row) throw notFound("machine", id);
    return row;
  },

  /**
   * Puts all switch ports of the machine into `vrf` (null: back to the PXE VLAN).
   * The switches' versions are their config generations, so each switch whose
   * ports changed gets a new one; returns their ids, for the caller to wake
   * their sessions once the transaction has committed.
   */
  async setPortVrf(tx: DbHandle, machineId: string, vrf: string | null): Promise<string[]> {
    const rows = await tx
      .update(machineConnections)
      .set({ vrf })
      .where(and(eq(machineConnections.machineId, machineId), sql`${machineConnections.vrf} is distinct from ${vrf}`))
      .returning({ switchId: machineConnections.switchId });
    const ids = [...new Set(rows.map((r) => r.switchId))].sort();
    if (ids.length > 0) {
      await tx
        .update(switches)
        .set({ version: sql`${switches.version} + 1`, updatedAt: sql`now()` })
        .where(inArray(switches.id, ids));
    }
    return ids;
  },

  /**
   * Queues commands for the machine's BMC. A new command supersedes a
   * pending one of the same machine and name (repeated frees while metal-bmc
   * is away must not queue one reset per free): the old row stays, as failed
   * with "superseded by <new id>", so the history says what happened to it.
   * Keeping only the newest of each name leaves the end state of the queue
   * as it was (the last boot order and LED state asked for win). Callers hold
   * the machine's row lock, so two enqueues of one machine do not interleave.
   */
  async enqueueCommands(tx: DbHandle, machineId: string, partitionId: string, commands: readonly string[], deadline: Date): Promise<BmcCommandRow[]> {
    if (commands.length === 0) return [];
    // Ids are time-ordered; one millisecond apart keeps the commands in the order given.
    const base = Date.now();
    const rows = commands.map((command, i) => ({ id: uuidv7(base + i), machineId, partitionId, command, deadline }));
    const newest = new Map(rows.map((r) => [r.command, r.id]));
    const by = JSON.stringify([...newest].map(([command, id]) => ({ command, id })));
    await tx.execute(sql`
      update ${bmcCommands} b set status = 'failed', result = 'superseded by ' || n.id, updated_at = now()
      from jsonb_to_recordset(${by}::jsonb) as n(command text, id text)
      where b.machine_id = ${machineId} and b.status = 'pending' and b.command = n.command`);
    return tx.insert(bmcCommands).values(rows).returning();
  },

  async commandsOf(db: DbHandle, machineId: string) {
    return db.select().from(bmcCommands).where(eq(bmcCommands.machineId, machineId)).orderBy(bmcCommands.id);
  },

  /** The newest commands of a machine first. */
  async recentCommands(db: DbHandle, machineId: string, limit: number): Promise<BmcCommandRow[]> {
    return db.select().from(bmcCommands).where(eq(bmcCommands.machineId, machineId)).orderBy(desc(bmcCommands.id)).limit(limit);
  },

  async setLed(tx: DbHandle, id: string, state: "on" | "off", description: string): Promise<MachineRow> {
    const [row] = await tx
      .update(machines)
      .set({ ledState: state, ledDescription: description, version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(eq(machines.id, id))
      .returning();
    if (!row) throw notFound("machine", id);
    return row;
  },

  /**
   * Releases what an allocation held: ephemeral IPs go, static IPs stay with
   * the project (detached from the machine), the ASN goes; the machine is
   * free, and not waiting: its lease is cleared with the allocation, so it is
   * no candidate until the reclaimed metal-hammer opens a new Wait stream.
   */
  async release(tx: DbHandle, id: string): Promise<{ releasedIps: number; keptIps: number }> {
    const released = await tx
      .delete(ips)
      .where(and(eq(ips.machineId, id), eq(ips.type, IpKind.EPHEMERAL)))
      .returning({ ip: ips.ip });
    const kept = await tx.update(ips).set({ machineId: null }).where(eq(ips.machineId, id)).returning({ ip: ips.ip });
    await tx.delete(asns).where(eq(asns.owner, id));
    await tx
      .update(machines)
      .set({ allocation: null, project: null, tags: [], waitingUntil: null, version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(eq(machines.id, id));
    return { releasedIps: released.length, keptIps: kept.length };
  },
};

/** Operator actions on machines. */
export const machineAdminRepository = {
  async setState(tx: DbHandle, id: string, state: MachineRow["state"], reason: string): Promise<MachineRow> {
    const [row] = await tx
      .update(machines)
      .set({ state, stateReason: reason, version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(eq(machines.id, id))
      .returning();
    if (!row) throw notFound("machine", id);
    return row;
  },

  /** Stores what metal-bmc reported (and the BIOS version when the BMC told it). */
  async saveBmc(tx: DbHandle, id: string, bmc: StoredBmc, bios: MachineRow["bios"]): Promise<void> {
    await tx
      .update(machines)
      .set({ bmc, bios, version: sql`${machines.version} + 1`, updatedAt: sql`now()` })
      .where(eq(machines.id, id));
  },

  /** Of the given BMC addresses, those that more than one machine reports. */
  async sharedBmcAddresses(db: DbHandle, addresses: readonly string[]): Promise<Set<string>> {
    const wanted = [...new Set(addresses.filter((a) => a !== ""))];
    if (wanted.length === 0) return new Set();
    const address = sql<string>`${machines.bmc}->>'address'`;
    const rows = await db.select({ address }).from(machines).where(inArray(address, wanted)).groupBy(address).having(sql`count(*) > 1`);
    return new Set(rows.map((r) => r.address));
  },

  /** Removes the machine; its events, cabling and commands go with it. */
  async delete(tx: DbHandle, id: string): Promise<void> {
    await tx.delete(machines).where(eq(machines.id, id));
  },
};

/** The row types callers of this repository name (handlers never import the schema). */
export type { MachineRow } from "../db/schema/index.js";
