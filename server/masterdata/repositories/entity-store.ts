import { Code, ConnectError } from "@connectrpc/connect";
import { and, arrayContains, eq, getTableName, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { DbHandle } from "../../db/handle.js";
import { alreadyExists, conflict, FOREIGN_KEY_VIOLATION, failedPrecondition, notFound, sqlState, taken, UNIQUE_VIOLATION } from "../../errors.js";
import { type PageRequest, toPage } from "../../repositories/paging.js";
import { getById, listPage, lockById } from "../../repositories/versioned.js";
import { nowMs } from "./clock.js";
import { historyRepository } from "./history-repository.js";
import { usedIdRepository } from "./used-id-repository.js";

/** A masterdata table: text id plus the meta columns. */
export type EntityTable = PgTable & {
  id: PgColumn;
  version: PgColumn;
  createdAt: PgColumn;
  updatedAt: PgColumn;
  annotations: PgColumn;
  labels: PgColumn;
};

export interface EntityStoreOptions {
  /** The entity's kind as recorded in the history ("Tenant"). */
  kind: string;
  /** How messages name it ("tenant"). */
  label: string;
  /** Messages for unique constraints other than the primary key, by constraint name. */
  duplicate?: Record<string, (row: Record<string, unknown>) => string>;
  /**
   * Ids are claimed for good in the used_ids register: a deleted entity's id
   * is never given to a new one (others refer to tenants and projects by id).
   */
  neverReuseIds?: boolean;
}

/** The filters every Find offers on meta: annotations and labels that must all be present. */
export interface MetaFilter {
  annotations: Record<string, string>;
  labels: string[];
}

/**
 * Create, read, update and delete of one entity type with optimistic locking,
 * each change appended to the history in the caller's transaction.
 */
export function createEntityStore<T extends EntityTable>(table: T, opts: EntityStoreOptions) {
  type Row = T["$inferSelect"];
  const { kind, label } = opts;
  const pkey = `${getTableName(table)}_pkey`;
  const idOf = (row: unknown) => (row as { id: string }).id;
  const updatedAtOf = (row: unknown) => (row as { updatedAt: Date }).updatedAt;

  return {
    get: (db: DbHandle, id: string): Promise<Row> => getById(db, table, label, id),

    /** Reads the row and locks it against any change until the transaction ends. */
    lock: (tx: DbHandle, id: string): Promise<Row> => lockById(tx, table, label, id),

    /**
     * Reads the row and keeps it from being deleted until the transaction ends,
     * without blocking others that only hold it too (FOR KEY SHARE).
     */
    async hold(tx: DbHandle, id: string): Promise<Row> {
      const rows = await tx
        .select()
        .from(table as PgTable)
        .where(eq(table.id, id))
        .for("key share");
      if (rows.length === 0) throw notFound(label, id);
      return rows[0] as Row;
    },

    /** Inserts the row at version 1 with the database's time. */
    async create(tx: DbHandle, row: T["$inferInsert"]): Promise<Row> {
      if (opts.neverReuseIds) {
        const claim = await usedIdRepository.claim(tx, kind, idOf(row));
        if (claim === "deleted") {
          throw new ConnectError(`${label} "${idOf(row)}" existed before and was deleted; ids are never reused, choose another`, Code.AlreadyExists);
        }
        if (claim === "in use") throw alreadyExists(label, idOf(row));
      }
      let created: Row;
      try {
        const at = sql`date_trunc('milliseconds', statement_timestamp())`;
        const rows = await tx
          .insert(table)
          .values({ ...row, version: 1, createdAt: at, updatedAt: at } as never)
          .returning();
        created = (rows as Row[])[0]!;
      } catch (err) {
        const state = sqlState(err);
        if (state === UNIQUE_VIOLATION) {
          const constraint = constraintOf(err);
          const message = constraint && constraint !== pkey ? opts.duplicate?.[constraint] : undefined;
          if (message) throw taken(message(row as Record<string, unknown>));
          throw alreadyExists(label, idOf(row));
        }
        if (state === FOREIGN_KEY_VIOLATION) throw new ConnectError(`${label} "${idOf(row)}" refers to something that does not exist`, Code.NotFound);
        throw err;
      }
      await historyRepository.record(tx, kind, "create", created as { id: string }, updatedAtOf(created));
      return created;
    },

    /**
     * Writes `patch` only if the row still has the version the caller read, and
     * bumps the version: zero rows means gone (NotFound) or changed (Aborted).
     */
    async update(tx: DbHandle, id: string, version: number, patch: Partial<T["$inferInsert"]>): Promise<Row> {
      const rows = (await tx
        .update(table)
        .set({ ...patch, version: sql`${table.version} + 1`, updatedAt: nowMs() } as never)
        .where(and(eq(table.id, id), eq(table.version, version)))
        .returning()) as Row[];
      const updated = rows[0];
      if (!updated) {
        const current = await tx
          .select({ version: table.version })
          .from(table as PgTable)
          .where(eq(table.id, id));
        if (current.length === 0) throw notFound(label, id);
        throw conflict(label, id, version, current[0]!.version as number);
      }
      await historyRepository.record(tx, kind, "update", updated as { id: string }, updatedAtOf(updated));
      return updated;
    },

    /** Deletes the row and returns it as it was. */
    async delete(tx: DbHandle, id: string): Promise<Row> {
      let rows: Row[];
      try {
        rows = (await tx.delete(table).where(eq(table.id, id)).returning()) as Row[];
      } catch (err) {
        if (sqlState(err) === FOREIGN_KEY_VIOLATION) throw failedPrecondition(`${label} "${id}" is still referred to`);
        throw err;
      }
      const deleted = rows[0];
      if (!deleted) throw notFound(label, id);
      if (opts.neverReuseIds) await usedIdRepository.markDeleted(tx, kind, id);
      await historyRepository.record(tx, kind, "delete", deleted as { id: string });
      return deleted;
    },

    /** Deletes every row matching `where`, each with its history entry. */
    async deleteWhere(tx: DbHandle, where: SQL): Promise<Row[]> {
      const deleted = (await tx.delete(table).where(where).returning()) as Row[];
      for (const row of deleted) await historyRepository.record(tx, kind, "delete", row as { id: string });
      return deleted;
    },

    /** One page of the rows matching every filter, ordered by id. */
    async page(db: DbHandle, filters: (SQL | undefined)[], meta: MetaFilter, page: PageRequest) {
      const all = [...filters];
      if (Object.keys(meta.annotations).length > 0) all.push(sql`${table.annotations} @> ${JSON.stringify(meta.annotations)}::jsonb`);
      if (meta.labels.length > 0) all.push(arrayContains(table.labels, meta.labels));
      const rows = await listPage(db, table, page, and(...all.filter((f): f is SQL => f !== undefined)));
      return toPage(rows as Row[], page.limit, idOf);
    },

    /** The row as it was at `at` (undefined: now); NotFound if the entity did not exist then. */
    async at(db: DbHandle, id: string, at: Date | undefined): Promise<Row> {
      const h = await historyRepository.latestAt(db, kind, id, at);
      if (!h || h.op === "delete") throw new ConnectError(`${label} "${id}" did not exist at ${at ? at.toISOString() : "this time"}`, Code.NotFound);
      return revive(h.state) as Row;
    },
  };
}

/** History states are JSON: bring the timestamps back to Dates. */
function revive(state: Record<string, unknown>): Record<string, unknown> {
  return { ...state, createdAt: new Date(state.createdAt as string), updatedAt: new Date(state.updatedAt as string) };
}

/** The constraint a database error names, whichever driver or wrapper threw it. */
function constraintOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const c = (e as { constraint?: unknown }).constraint;
    if (typeof c === "string") return c;
  }
  return undefined;
}
