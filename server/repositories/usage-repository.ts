import { arrayContains, eq, or, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { DbHandle } from "../db/handle.js";
import { filesystemLayouts, images, machines, networks, partitions, sizeImageConstraints, sizeReservations, sizes, switches } from "../db/schema/index.js";
import { SAMPLE_SIZE, UserKind, type Users } from "../domain/in-use.js";
import { notFound } from "../errors.js";

/**
 * Who still uses a partition, size, image or filesystem layout, and the lock
 * that keeps the answer true until the delete commits.
 *
 * The protocol: a delete locks the row FOR UPDATE (`lockById`), counts its
 * users here in the same transaction, and deletes only if there are none. A
 * writer that makes something use the row holds it FOR KEY SHARE (`hold`)
 * in its own transaction before it writes. The two locks conflict, so either
 * the writer commits first (the delete's lock waits for it, and its count,
 * a new statement under READ COMMITTED, sees the new user) or the delete
 * commits first (the writer's hold then finds no row and answers NotFound).
 * KEY SHARE does not conflict with itself or with updates of non-key
 * columns: parallel allocations and edits of the entity do not wait for
 * each other. A foreign key (switches -> partitions, size reservations ->
 * sizes) takes the same KEY SHARE lock on insert by itself.
 */

/** How many rows of `table` match, and the first ids (ordered) to name them. */
async function users(tx: DbHandle, kind: UserKind, table: PgTable, id: PgColumn, where: SQL | undefined): Promise<Users> {
  const [r] = await tx
    .select({
      count: sql<number>`count(*)::int`,
      sample: sql<string[] | null>`(array_agg(${id} order by ${id}))[1:${sql.raw(String(SAMPLE_SIZE))}]`,
    })
    .from(table)
    .where(where);
  return { kind, count: Number(r?.count ?? 0), sample: r?.sample ?? [] };
}

/** The allocation's JSON field, as text. */
const allocationField = (field: string) => sql`${machines.allocation} ->> ${sql.raw(`'${field}'`)}`;

type Holdable = typeof partitions | typeof sizes | typeof images | typeof filesystemLayouts;

async function holdRow(tx: DbHandle, table: Holdable, id: string): Promise<boolean> {
  const rows = await tx
    .select({ id: table.id })
    .from(table as PgTable)
    .where(eq(table.id, id))
    .for("key share");
  return rows.length > 0;
}

/** Holds the row FOR KEY SHARE until the transaction ends; NotFound when it is not there (or was just deleted). */
async function hold(tx: DbHandle, table: Holdable, kind: string, id: string): Promise<void> {
  if (!(await holdRow(tx, table, id))) throw notFound(kind, id);
}

/** What an allocation refers to by id. */
export interface AllocationReferences {
  partition: string;
  size: string;
  image: string;
  filesystemLayout: string;
}

/**
 * A condition that holds the allocation's references FOR KEY SHARE (see
 * above) and is true only while they all exist: part of the statement that
 * locks the candidate machine, so that holding them costs no round trip of
 * its own. When it is false, `referenceHolds.allocation` says which is gone.
 */
export function allocationReferencesHeld(refs: AllocationReferences): SQL {
  const held = (table: Holdable, id: string) => sql`exists (select 1 from ${table} where ${table.id} = ${id} for key share)`;
  return sql`(${held(partitions, refs.partition)} and ${held(sizes, refs.size)} and ${held(images, refs.image)} and ${held(filesystemLayouts, refs.filesystemLayout)})`;
}

/**
 * Locks that a writer takes on what it is about to refer to (see above).
 * Call inside the writing transaction, before the write.
 */
export const referenceHolds = {
  partition: (tx: DbHandle, id: string) => hold(tx, partitions, "partition", id),
  /**
   * Several partitions; NotFound names the first missing one. Holders never
   * wait for each other and a delete locks one row, so the order cannot deadlock.
   */
  async partitions(tx: DbHandle, ids: readonly string[]): Promise<void> {
    for (const id of new Set(ids)) await hold(tx, partitions, "partition", id);
  },
  size: (tx: DbHandle, id: string) => hold(tx, sizes, "size", id),
  /** The size if it exists; for writers that may name a size before it exists (size-image constraints). */
  sizeIfPresent: (tx: DbHandle, id: string): Promise<boolean> => holdRow(tx, sizes, id),
  image: (tx: DbHandle, id: string) => hold(tx, images, "image", id),
  filesystemLayout: (tx: DbHandle, id: string) => hold(tx, filesystemLayouts, "filesystem layout", id),

  /**
   * Everything an allocation refers to, held in one round trip (allocation is
   * the hot path); NotFound names the first that is gone.
   */
  async allocation(tx: DbHandle, refs: AllocationReferences): Promise<void> {
    const held = (table: Holdable, id: string) => sql`(select ${table.id} from ${table} where ${table.id} = ${id} for key share)`;
    const result = (await tx.execute(
      sql`select ${held(partitions, refs.partition)} as partition, ${held(sizes, refs.size)} as size, ${held(images, refs.image)} as image, ${held(filesystemLayouts, refs.filesystemLayout)} as layout`,
    )) as unknown as { rows: Record<string, string | null>[] };
    const row = result.rows[0] ?? {};
    if (row.partition == null) throw notFound("partition", refs.partition);
    if (row.size == null) throw notFound("size", refs.size);
    if (row.image == null) throw notFound("image", refs.image);
    if (row.layout == null) throw notFound("filesystem layout", refs.filesystemLayout);
  },
};

/** The users of each kind of entity; call in the deleting transaction, after locking the row. */
export const usageRepository = {
  /** Machines matched to the size (allocated or not), reservations of it, and its size-image constraint. */
  async ofSize(tx: DbHandle, id: string): Promise<Users[]> {
    return [
      await users(tx, UserKind.machine, machines, machines.id, eq(machines.sizeId, id)),
      await users(tx, UserKind.sizeReservation, sizeReservations, sizeReservations.id, eq(sizeReservations.sizeId, id)),
      await users(tx, UserKind.sizeImageConstraint, sizeImageConstraints, sizeImageConstraints.id, eq(sizeImageConstraints.id, id)),
    ];
  },

  /**
   * Allocations installed (or installing) with the image, and those that would
   * fall back to it when a reinstall is aborted. Layouts and size-image
   * constraints name OSes and version ranges, never an image id: they do not count.
   */
  async ofImage(tx: DbHandle, id: string): Promise<Users[]> {
    return [await users(tx, UserKind.allocatedMachine, machines, machines.id, or(sql`${allocationField("image")} = ${id}`, sql`${allocationField("previousImage")} = ${id}`))];
  },

  /** Allocations partitioned with the layout (a reinstall partitions with it again). */
  async ofFilesystemLayout(tx: DbHandle, id: string): Promise<Users[]> {
    return [await users(tx, UserKind.allocatedMachine, machines, machines.id, sql`${allocationField("filesystemLayout")} = ${id}`)];
  },

  /** Machines, switches, networks and size reservations in the partition. */
  async ofPartition(tx: DbHandle, id: string): Promise<Users[]> {
    return [
      await users(tx, UserKind.machine, machines, machines.id, eq(machines.partitionId, id)),
      await users(tx, UserKind.switch, switches, switches.id, eq(switches.partitionId, id)),
      await users(tx, UserKind.network, networks, networks.id, eq(networks.partitionId, id)),
      await users(tx, UserKind.sizeReservation, sizeReservations, sizeReservations.id, arrayContains(sizeReservations.partitionIds, [id])),
    ];
  },
};
