import { and, desc, eq, lte, sql, type SQL } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { Db } from "../../db/database.js";
import { notFound } from "../../errors.js";
import { toPage, type PageRequest } from "../../repositories/paging.js";
import { deleteById, getById, insertUnique, listPage, lockById, updateVersioned } from "../../repositories/versioned.js";
import { history } from "../db/schema/index.js";

type EntityTable = PgTable & { id: PgColumn; version: PgColumn; updatedAt: PgColumn; annotations: PgColumn };

/**
 * Create/read/update/delete of one masterdata entity type, each change written
 * to the history table in the same transaction so GetHistory can answer what
 * the entity looked like at any time.
 */
export function createStore<T extends EntityTable>(table: T, kind: string, label: string) {
  type Row = T["$inferSelect"];
  const record = (tx: Db<any>, op: "create" | "update" | "delete", row: Row) =>
    tx.insert(history).values({ kind, entityId: (row as { id: string }).id, op, state: row as Record<string, unknown> });

  return {
    get: (db: Db<any>, id: string): Promise<Row> => getById(db, table, label, id),

    /** Reads the row and locks it until the transaction ends. */
    lock: (tx: Db<any>, id: string): Promise<Row> => lockById(tx, table, label, id),

    async create(tx: Db<any>, row: T["$inferInsert"]): Promise<Row> {
      const created = await insertUnique(tx, table, label, (row as { id: string }).id, row);
      await record(tx, "create", created);
      return created;
    },

    async update(tx: Db<any>, id: string, version: number, patch: Record<string, unknown>): Promise<Row> {
      const updated = await updateVersioned(tx, table, label, id, version, patch);
      await record(tx, "update", updated);
      return updated;
    },

    async delete(tx: Db<any>, id: string): Promise<Row> {
      const deleted = await deleteById(tx, table, label, id);
      await record(tx, "delete", deleted);
      return deleted;
    },

    /** Deletes every row matching `where`, with a history entry each. */
    async deleteWhere(tx: Db<any>, where: SQL): Promise<Row[]> {
      const deleted = (await tx.delete(table).where(where).returning()) as Row[];
      for (const row of deleted) await record(tx, "delete", row);
      return deleted;
    },

    async find(db: Db<any>, filters: (SQL | undefined)[], annotations: Record<string, string>, page: PageRequest) {
      const all = [...filters];
      if (Object.keys(annotations).length > 0) all.push(sql`${table.annotations} @> ${JSON.stringify(annotations)}::jsonb`);
      const rows = await listPage(db, table, page, and(...all));
      return toPage(rows, page.limit, (r) => (r as { id: string }).id);
    },

    /** The state at `at` (now if unset); NotFound if the entity did not exist then. */
    async at(db: Db<any>, id: string, when: Date | undefined): Promise<Row> {
      const at = when ?? new Date();
      const rows = await db
        .select()
        .from(history)
        .where(and(eq(history.kind, kind), eq(history.entityId, id), lte(history.at, at)))
        .orderBy(desc(history.at), desc(history.seq))
        .limit(1);
      const h = rows[0];
      if (!h || h.op === "delete") throw notFound(label, `${id}" at "${at.toISOString()}`);
      return revive(h.state) as Row;
    },
  };
}

/** History states are JSON: bring the timestamps back to Dates. */
function revive(state: Record<string, unknown>): Record<string, unknown> {
  return { ...state, createdAt: new Date(state.createdAt as string), updatedAt: new Date(state.updatedAt as string) };
}
