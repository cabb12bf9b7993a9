import { and, eq, gt, isNull, type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type NewTokenRow, type SigningKeyRow, signingKeys, type TokenRow, tokens } from "../db/schema/index.js";
import { notFound, unauthenticated } from "../errors.js";
import { type PageRequest, toPage } from "./paging.js";

/** Serialises metal-api's own issuing of the bootstrap admin token across replicas. */
const BOOTSTRAP_LOCK_KEY = 7202;

/** The ids of `rootId` and of every token minted from it, at any depth. */
const lineageOf = (rootId: string): SQL => sql`with recursive lineage(id) as (select ${rootId}::text union select t.id from ${tokens} t join lineage l on t.parent_id = l.id) select id from lineage`;

const inLineage = (rootId: string): SQL => sql`${tokens.id} in (${lineageOf(rootId)})`;

/** Issued tokens and the keys that sign them. */
export const tokenRepository = {
  async create(db: DbHandle, row: NewTokenRow): Promise<TokenRow> {
    const [created] = await db.insert(tokens).values(row).returning();
    return created!;
  },

  /**
   * Holds the parent (FOR SHARE) until the caller's transaction ends and checks
   * it is not revoked: a revocation of the parent waits for the child to be
   * committed and then revokes it too, or the child is refused here.
   */
  async holdLiveParent(tx: DbHandle, parentId: string): Promise<TokenRow> {
    const [row] = await tx.select().from(tokens).where(eq(tokens.id, parentId)).for("share");
    if (!row || row.revokedAt) throw unauthenticated("the token has been revoked");
    return row;
  },

  /** Like holdLiveParent, for a refresh: returns the parent's expiry; undefined when it is gone. */
  async holdParent(tx: DbHandle, parentId: string): Promise<Date | undefined> {
    const [row] = await tx.select({ expiresAt: tokens.expiresAt }).from(tokens).where(eq(tokens.id, parentId)).for("share");
    return row?.expiresAt;
  },

  async find(db: DbHandle, id: string): Promise<TokenRow | undefined> {
    const rows = await db.select().from(tokens).where(eq(tokens.id, id));
    return rows[0];
  },

  /** Tokens oldest first (ids are time-ordered), optionally of one subject. */
  async list(db: DbHandle, page: PageRequest, subject?: string) {
    const filters: SQL[] = [];
    if (subject !== undefined) filters.push(eq(tokens.subject, subject));
    return listWhere(db, page, filters);
  },

  /** A token and every token minted from it (at any depth), oldest first. */
  async listLineage(db: DbHandle, rootId: string, page: PageRequest) {
    return listWhere(db, page, [inLineage(rootId)]);
  },

  /** Whether `id` is `rootId` or was minted from it, at any depth. */
  async isInLineage(db: DbHandle, rootId: string, id: string): Promise<boolean> {
    const rows = await db
      .select({ id: tokens.id })
      .from(tokens)
      .where(and(eq(tokens.id, id), inLineage(rootId)));
    return rows.length > 0;
  },

  /**
   * Revokes a token and every token minted from it, at any depth; revoking
   * twice keeps the first time. Returns the token first, then every token this
   * call revoked. Use it inside a transaction: the first statement locks the
   * token, so a mint from it that is under way commits first (and a later one
   * sees it revoked, see holdLiveParent); each further statement sees what
   * the previous one waited for, and the loop ends when one finds nothing left.
   */
  async revokeCascade(tx: DbHandle, id: string): Promise<TokenRow[]> {
    const [root] = await tx
      .update(tokens)
      .set({ revokedAt: sql`coalesce(${tokens.revokedAt}, now())` })
      .where(eq(tokens.id, id))
      .returning();
    if (!root) throw notFound("token", id);
    const revoked = [root];
    for (;;) {
      const rows = await tx
        .update(tokens)
        .set({ revokedAt: sql`now()` })
        .where(and(isNull(tokens.revokedAt), inLineage(id)))
        .returning();
      if (rows.length === 0) return revoked;
      revoked.push(...rows);
    }
  },

  /** Removes the grant of `projectId` from every token that has one; returns the changed tokens. */
  async dropProjectGrant(db: DbHandle, projectId: string): Promise<TokenRow[]> {
    return db
      .update(tokens)
      .set({ roles: sql`jsonb_set(${tokens.roles}, '{projects}', (${tokens.roles} -> 'projects') - ${projectId}::text)` })
      .where(sql`(${tokens.roles} -> 'projects') ? ${projectId}::text`)
      .returning();
  },

  /**
   * Caps the grant on one tenant or project of every unrevoked token of `subject` at `max`
   * (0 removes it); returns the changed tokens. Tokens granting less are left alone.
   */
  async capSubjectGrant(db: DbHandle, subject: string, scope: "tenants" | "projects", id: string, max: number): Promise<TokenRow[]> {
    const path = sql`array[${scope}::text, ${id}::text]`;
    const held = sql`(${tokens.roles} #>> ${path})::int`;
    const roles = max <= 0 ? sql`jsonb_set(${tokens.roles}, array[${scope}::text], (${tokens.roles} -> ${scope}::text) - ${id}::text)` : sql`jsonb_set(${tokens.roles}, ${path}, to_jsonb(${max}::int))`;
    // Locked first, in a statement of its own: a mint holding one of these tokens (as parent, FOR SHARE) commits
    // before this goes on, and the UPDATE below, with a snapshot taken after it, caps the minted token too.
    await db
      .select({ id: tokens.id })
      .from(tokens)
      .where(and(eq(tokens.subject, subject), isNull(tokens.revokedAt), sql`${held} > ${max}::int`))
      .orderBy(tokens.id)
      .for("update");
    return db
      .update(tokens)
      .set({ roles })
      .where(and(eq(tokens.subject, subject), isNull(tokens.revokedAt), sql`${held} > ${max}::int`))
      .returning();
  },

  /** Takes the bootstrap lock until the transaction ends. */
  async lockBootstrap(tx: DbHandle): Promise<void> {
    await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK_KEY})`);
  },

  /** Whether metal-api ever issued a bootstrap admin token in this database (revoked or not). */
  async bootstrapWasIssued(db: DbHandle): Promise<boolean> {
    const rows = await db.select({ id: tokens.id }).from(tokens).where(eq(tokens.bootstrap, true)).limit(1);
    return rows.length > 0;
  },

  /** The bootstrap tokens not revoked yet. */
  async liveBootstrapIds(db: DbHandle): Promise<string[]> {
    const rows = await db
      .select({ id: tokens.id })
      .from(tokens)
      .where(and(eq(tokens.bootstrap, true), isNull(tokens.revokedAt)));
    return rows.map((r) => r.id);
  },

  /** Replaces a token's description; undefined when there is no such token. */
  async updateDescription(db: DbHandle, id: string, description: string): Promise<TokenRow | undefined> {
    const [row] = await db.update(tokens).set({ description }).where(eq(tokens.id, id)).returning();
    return row;
  },

  /** Reads a token and locks it until the transaction ends, so that two refreshes of it cannot both succeed. */
  async lockForUpdate(tx: DbHandle, id: string): Promise<TokenRow | undefined> {
    const [row] = await tx.select().from(tokens).where(eq(tokens.id, id)).for("update");
    return row;
  },

  /** Moves what was minted from `fromId` under `toId` (a refresh keeps the derived tokens alive). */
  async moveChildren(tx: DbHandle, fromId: string, toId: string): Promise<void> {
    await tx.update(tokens).set({ parentId: toId }).where(eq(tokens.parentId, fromId));
  },

  /** Revokes this one token only (its children were moved away first). */
  async revokeOne(tx: DbHandle, id: string): Promise<TokenRow> {
    const [row] = await tx
      .update(tokens)
      .set({ revokedAt: sql`coalesce(${tokens.revokedAt}, now())` })
      .where(eq(tokens.id, id))
      .returning();
    if (!row) throw notFound("token", id);
    return row;
  },

  async newestSigningKey(db: DbHandle): Promise<SigningKeyRow | undefined> {
    const rows = await db.select().from(signingKeys).orderBy(sql`${signingKeys.createdAt} desc, ${signingKeys.id} desc`).limit(1);
    return rows[0];
  },

  /** Every signing key, newest first. */
  async signingKeys(db: DbHandle): Promise<SigningKeyRow[]> {
    return db.select().from(signingKeys).orderBy(sql`${signingKeys.createdAt} desc, ${signingKeys.id} desc`);
  },

  /**
   * Deletes the keys no unexpired token can carry any more and returns their
   * ids. A key signed the tokens issued until its successor was made, plus
   * `graceMs` for an issue that read the key just before (see token-authority);
   * once every such token expired or was revoked, nothing verifies against it.
   * The newest key is never deleted (it has no successor).
   */
  async retireSigningKeys(db: DbHandle, graceMs: number): Promise<string[]> {
    const grace = sql`(${graceMs}::bigint * interval '1 millisecond')`;
    const successorMadeAt = sql`(select min(s.created_at) from ${signingKeys} s where s.created_at > k.created_at)`;
    const res = (await db.execute(sql`
      delete from ${signingKeys} k
      where ${successorMadeAt} + ${grace} < now()
        and not exists (
          select 1 from ${tokens} t
          where t.revoked_at is null and t.expires_at > now() and t.created_at < ${successorMadeAt} + ${grace}
        )
      returning k.id`)) as unknown as { rows: { id: string }[] };
    return res.rows.map((r) => r.id);
  },

  /** Stores a key unless one with that id exists: replicas starting together agree on the first. */
  async insertSigningKeyIfAbsent(db: DbHandle, row: typeof signingKeys.$inferInsert): Promise<void> {
    await db.insert(signingKeys).values(row).onConflictDoNothing();
  },
};

async function listWhere(db: DbHandle, page: PageRequest, filters: SQL[]) {
  const all = [...filters];
  if (page.after !== undefined) all.push(gt(tokens.id, page.after));
  const rows = await db
    .select()
    .from(tokens)
    .where(and(...all))
    .orderBy(tokens.id)
    .limit(page.limit + 1);
  return toPage(rows, page.limit, (r) => r.id);
}
