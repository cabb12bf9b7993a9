import { sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";

/**
 * Keys of transaction-scoped advisory locks. Each serialises one kind of
 * check-then-write that no unique constraint can express (e.g. "no two sizes
 * overlap"), so that parallel requests on any replica see each other's rows.
 */
export const LockKey = {
  sizes: 7101,
  filesystemLayouts: 7102,
} as const;

export async function lockForTransaction(tx: DbHandle, key: number): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${key})`);
}
