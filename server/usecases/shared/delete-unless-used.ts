import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { inUseRefusal, type Users } from "../../domain/in-use.js";
import { failedPrecondition } from "../../errors.js";

export interface GuardedDelete<Row> {
  /** How the refusal names the entity: `size "s1"`. */
  what: string;
  /** Locks the row FOR UPDATE until the transaction ends (NotFound when it is not there). */
  lock(tx: DbHandle): Promise<unknown>;
  /** Everything still using it, counted under that lock. */
  users(tx: DbHandle): Promise<Users[]>;
  remove(tx: DbHandle): Promise<Row>;
  /** What the operator should do about the users: "delete them first". */
  hint: string;
}

/**
 * Deletes an entity only if nothing uses it, refusing with FailedPrecondition
 * naming the users otherwise. Lock, count and delete are one transaction; a
 * writer adding a user holds the row FOR KEY SHARE (see usage-repository), so
 * no user can appear between the count and the commit.
 */
export function deleteUnlessUsed<Row>(db: DbHandle, d: GuardedDelete<Row>): Promise<Row> {
  return inTransaction(db, async (tx) => {
    await d.lock(tx);
    const refusal = inUseRefusal(d.what, await d.users(tx), d.hint);
    if (refusal) throw failedPrecondition(refusal);
    return d.remove(tx);
  });
}
