import { and, eq, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { DbHandle } from "../db/handle.js";
import { alreadyExists, conflict, notFound, sqlState, UNIQUE_VIOLATION } from "../errors.js";

/**
 * A table with the bookkeeping columns and a text primary key. The helpers
 * below take an optional `also` condition that narrows which row counts (a
 * tenant's project scope): a row outside it answers exactly like a missing one.
 */
type VersionedTable = PgTable & { id: PgColumn; version: PgColumn; updatedAt: PgColumn };

/**
 * Updates one row only if it still has the version the caller read, and bumps
 * the version. Zero rows updated means either the row is gone (NotFound) or
 * somebody else changed it first (Aborted): one extra read tells which.
 */
export async function updateVersioned<T extends VersionedTable>(db: DbHandle, table: T, kind: string, id: string, version: number, patch: Record<string, unknown>, also?: SQL): Promise<T["$inferSelect"]> {
  const rows = (await db
    .update(table)
    .set({ ...patch, version: sql`${table.version} + 1`, updatedAt: sql`now()` } as never)
    .where(and(eq(table.id, id), eq(table.version, version), also))
    .returning()) as T["$inferSelect"][];
  if (rows.length === 1) return rows[0]!;
  const current = await db
    .select({ version: table.version })
    .from(table as PgTable)
    .where(and(eq(table.id, id), also));
  if (current.length === 0) throw notFound(kind, id);
  throw conflict(kind, id, version, current[0]!.version as number);
}

/** Inserts a row, answering AlreadyExists when the id is taken. */
export async function insertUnique<T extends PgTable>(db: DbHandle, table: T, kind: string, id: string, row: T["$inferInsert"]): Promise<T["$inferSelect"]> {
  try {
    const rows = await db.insert(table).values(row).returning();
    return (rows as T["$inferSelect"][])[0]!;
  } catch (err) {
    if (sqlState(err) === UNIQUE_VIOLATION) throw alreadyExists(kind, id);
    throw err;
  }
}

/** Deletes a row by id and returns it, or answers NotFound. */
export async function deleteById<T extends VersionedTable>(db: DbHandle, table: T, kind: string, id: string, also?: SQL): Promise<T["$inferSelect"]> {
  const rows = await db
    .delete(table)
    .where(and(eq(table.id, id), also))
    .returning();
  if (rows.length === 0) throw notFound(kind, id);
  return (rows as T["$inferSelect"][])[0]!;
}

/** Reads a row by id or answers NotFound. */
export async function getById<T extends VersionedTable>(db: DbHandle, table: T, kind: string, id: string, also?: SQL): Promise<T["$inferSelect"]> {
  const rows = await db
    .select()
    .from(table as PgTable)
    .where(and(eq(table.id, id), also));
  if (rows.length === 0) throw notFound(kind, id);
  return rows[0] as T["$inferSelect"];
}

/** Reads a row by id and locks it until the transaction ends, or answers NotFound. */
export async function lockById<T extends VersionedTable>(tx: DbHandle, table: T, kind: string, id: string, also?: SQL): Promise<T["$inferSelect"]> {
  const rows = await tx
    .select()
    .from(table as PgTable)
    .where(and(eq(table.id, id), also))
    .for("update");
  if (rows.length === 0) throw notFound(kind, id);
  return rows[0] as T["$inferSelect"];
}

/** Lists rows ordered by id, one page at a time. */
export async function listPage<T extends VersionedTable>(db: DbHandle, table: T, page: { limit: number; after: string | undefined }, filter?: SQL): Promise<T["$inferSelect"][]> {
  const where = page.after === undefined ? filter : filter ? and(filter, sql`${table.id} > ${page.after}`) : sql`${table.id} > ${page.after}`;
  const rows = await db
    .select()
    .from(table as PgTable)
    .where(where)
    .orderBy(table.id)
    .limit(page.limit + 1);
  return rows as T["$inferSelect"][];
}
