import { and, eq, gt, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/database.js";
import { signingKeys, tokens, type NewTokenRow, type SigningKeyRow, type TokenRow } from "../db/schema/index.js";
import { notFound } from "../errors.js";
import { toPage, type PageRequest } from "./paging.js";

/** Issued tokens and the keys that sign them. */
export const tokenRepository = {
  async create(db: Db<any>, row: NewTokenRow): Promise<TokenRow> {
    const [created] = await db.insert(tokens).values(row).returning();
    return created!;
  },

  async find(db: Db<any>, id: string): Promise<TokenRow | undefined> {
    const rows = await db.select().from(tokens).where(eq(tokens.id, id));
    return rows[0];
  },

  /** Tokens oldest first (ids are time-ordered), optionally of one subject. */
  async list(db: Db<any>, page: PageRequest, subject?: string) {
    const filters: SQL[] = [];
    if (subject !== undefined) filters.push(eq(tokens.subject, subject));
    if (page.after !== undefined) filters.push(gt(tokens.id, page.after));
    const rows = await db
      .select()
      .from(tokens)
      .where(and(...filters))
      .orderBy(tokens.id)
      .limit(page.limit + 1);
    return toPage(rows, page.limit, (r) => r.id);
  },

  /** Revokes a token (of `subject`, when given); revoking twice keeps the first time. */
  async revoke(db: Db<any>, id: string, subject?: string): Promise<TokenRow> {
    const where = subject === undefined ? eq(tokens.id, id) : and(eq(tokens.id, id), eq(tokens.subject, subject));
    const [row] = await db
      .update(tokens)
      .set({ revokedAt: sql`coalesce(${tokens.revokedAt}, now())` })
      .where(where)
      .returning();
    if (!row) throw notFound("token", id);
    return row;
  },

  async newestSigningKey(db: Db<any>): Promise<SigningKeyRow | undefined> {
    const rows = await db.select().from(signingKeys).orderBy(sql`${signingKeys.createdAt} desc`).limit(1);
    return rows[0];
  },

  /** Stores a key unless one with that id exists: replicas starting together agree on the first. */
  async insertSigningKeyIfAbsent(db: Db<any>, row: typeof signingKeys.$inferInsert): Promise<void> {
    await db.insert(signingKeys).values(row).onConflictDoNothing();
  },

};
