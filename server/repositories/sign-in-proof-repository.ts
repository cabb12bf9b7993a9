import { and, eq, gte, lt } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { signInProofs } from "../db/schema/sign-in-proofs.js";

export const signInProofRepository = {
  /**
   * Marks a proof used. False when it was used before, also by a transaction
   * that commits while this one waits on the key: of two exchanges of one ID
   * token at once, exactly one gets true.
   */
  async use(db: DbHandle, digest: string, usableUntil: Date): Promise<boolean> {
    const rows = await db.insert(signInProofs).values({ digest, usableUntil }).onConflictDoNothing().returning({ digest: signInProofs.digest });
    return rows.length === 1;
  },

  /**
   * Whether a proof was used by a committed sign-in and is kept still (a
   * quick refusal before any other work; `use` in the sign-in's transaction
   * stays the check that counts). A row past `usableUntil` is one `prune`
   * deletes: not counted here either.
   */
  async wasUsed(db: DbHandle, digest: string, now: Date): Promise<boolean> {
    const rows = await db
      .select({ digest: signInProofs.digest })
      .from(signInProofs)
      .where(and(eq(signInProofs.digest, digest), gte(signInProofs.usableUntil, now)))
      .limit(1);
    return rows.length === 1;
  },

  /** Forgets proofs that could no longer pass verification anyway. */
  async prune(db: DbHandle, now: Date): Promise<void> {
    await db.delete(signInProofs).where(lt(signInProofs.usableUntil, now));
  },
};
