import { and, desc, eq, gte, like, lt, or, type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type AuditRow, auditEntries } from "../db/schema/audit.js";

export type NewAuditEntry = AuditRow;

/** What a list narrows by; every field is optional. */
export interface AuditQuery {
  from?: Date;
  to?: Date;
  subject?: string;
  /** The full RPC name, or its end ("IPService/Create"). */
  method?: string;
  targetId?: string;
  outcome?: string;
  /** Restricts to one project's entries. */
  project?: string;
  /** Continues strictly before this id (newest first). */
  before?: string;
  limit: number;
}

/** Escapes LIKE's wildcards so a method filter matches literally. */
const literal = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

export const auditRepository = {
  async insert(db: DbHandle, entry: NewAuditEntry): Promise<void> {
    await db.insert(auditEntries).values(entry);
  },

  /** A call failed after the transaction that carried its entry committed: the entry tells how it ended. */
  async setOutcome(db: DbHandle, id: string, outcome: string, errorMessage: string): Promise<void> {
    await db.update(auditEntries).set({ outcome, errorMessage }).where(eq(auditEntries.id, id));
  },

  async get(db: DbHandle, id: string): Promise<AuditRow | undefined> {
    const [row] = await db.select().from(auditEntries).where(eq(auditEntries.id, id));
    return row;
  },

  /** Up to `limit + 1` entries, newest first (the extra one tells there is a next page). */
  async list(db: DbHandle, q: AuditQuery): Promise<AuditRow[]> {
    const where: (SQL | undefined)[] = [
      q.from ? gte(auditEntries.at, q.from) : undefined,
      q.to ? lt(auditEntries.at, q.to) : undefined,
      q.subject ? eq(auditEntries.subject, q.subject) : undefined,
      q.method ? or(eq(auditEntries.method, q.method), like(auditEntries.method, `%${literal(q.method)}`)) : undefined,
      q.targetId ? sql`${auditEntries.targetIds} @> array[${q.targetId}]::text[]` : undefined,
      q.outcome ? eq(auditEntries.outcome, q.outcome) : undefined,
      q.project ? eq(auditEntries.project, q.project) : undefined,
      q.before ? lt(auditEntries.id, q.before) : undefined,
    ];
    return db
      .select()
      .from(auditEntries)
      .where(and(...where))
      .orderBy(desc(auditEntries.id))
      .limit(q.limit + 1);
  },

  /** Deletes entries older than `before`; returns how many. */
  async prune(db: DbHandle, before: Date): Promise<number> {
    const deleted = await db.delete(auditEntries).where(lt(auditEntries.at, before)).returning({ id: auditEntries.id });
    return deleted.length;
  },
};
