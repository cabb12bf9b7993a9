import { and, asc, eq, inArray, lt, ne } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type PendingGrantCapRow, pendingGrantCaps } from "../db/schema/tokens.js";

/** Whose grant on which tenant or project a removal is taking. */
export interface GrantCapKey {
  subject: string;
  kind: "tenant" | "project";
  targetId: string;
}

const ofKey = (k: GrantCapKey) => and(eq(pendingGrantCaps.subject, k.subject), eq(pendingGrantCaps.kind, k.kind), eq(pendingGrantCaps.targetId, k.targetId));

export const pendingGrantCapRepository = {
  async add(db: DbHandle, id: string, key: GrantCapKey): Promise<void> {
    await db.insert(pendingGrantCaps).values({ id, ...key });
  },

  /** Whether an earlier removal of the same membership left its row (its cap did not finish). */
  async hasOther(db: DbHandle, key: GrantCapKey, id: string): Promise<boolean> {
    const rows = await db
      .select({ id: pendingGrantCaps.id })
      .from(pendingGrantCaps)
      .where(and(ofKey(key), ne(pendingGrantCaps.id, id)))
      .limit(1);
    return rows.length > 0;
  },

  async delete(db: DbHandle, ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await db.delete(pendingGrantCaps).where(inArray(pendingGrantCaps.id, [...ids]));
  },

  /** After the member's tokens were capped: every row of that membership is done. */
  async clear(db: DbHandle, key: GrantCapKey): Promise<void> {
    await db.delete(pendingGrantCaps).where(ofKey(key));
  },

  /** Rows older than `before`, oldest first: left behind by removals that did not finish. */
  async due(db: DbHandle, before: Date, limit: number): Promise<PendingGrantCapRow[]> {
    return db.select().from(pendingGrantCaps).where(lt(pendingGrantCaps.createdAt, before)).orderBy(asc(pendingGrantCaps.createdAt)).limit(limit);
  },
};
