import { and, eq, sql } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import { usedIds } from "../db/schema/index.js";

/** The register of tenant and project ids ever created (see the used_ids table). */
export const usedIdRepository = {
  /**
   * Claims `id` for good. Returns "claimed", or what the register already
   * knew: "in use" (alive) or "deleted" (used before; never again). A
   * concurrent claim of the same id waits for the other transaction.
   */
  async claim(tx: DbHandle, kind: string, id: string): Promise<"claimed" | "in use" | "deleted"> {
    const inserted = await tx.insert(usedIds).values({ kind, id }).onConflictDoNothing().returning({ id: usedIds.id });
    if (inserted.length > 0) return "claimed";
    const [row] = await tx
      .select({ deletedAt: usedIds.deletedAt })
      .from(usedIds)
      .where(and(eq(usedIds.kind, kind), eq(usedIds.id, id)));
    return row?.deletedAt ? "deleted" : "in use";
  },

  /** Marks the id as deleted; it stays claimed. */
  async markDeleted(tx: DbHandle, kind: string, id: string): Promise<void> {
    await tx
      .update(usedIds)
      .set({ deletedAt: sql`date_trunc('milliseconds', statement_timestamp())` })
      .where(and(eq(usedIds.kind, kind), eq(usedIds.id, id)));
  },
};
