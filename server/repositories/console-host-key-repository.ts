import { eq } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { type ConsoleHostKeyRow, consoleHostKeys } from "../db/schema/index.js";

/** The console's SSH host keys; one row per key id. */
export const consoleHostKeyRepository = {
  async get(db: DbHandle, id: string): Promise<ConsoleHostKeyRow | undefined> {
    const rows = await db.select().from(consoleHostKeys).where(eq(consoleHostKeys.id, id));
    return rows[0];
  },

  /** Stores the key unless one with that id exists already (the first replica wins). */
  async insertIfMissing(db: DbHandle, row: typeof consoleHostKeys.$inferInsert): Promise<void> {
    await db.insert(consoleHostKeys).values(row).onConflictDoNothing();
  },
};
