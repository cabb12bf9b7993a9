import { sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";

/** Answers when the database answers a trivial query. */
export async function pingDatabase(db: DbHandle): Promise<void> {
  await db.execute(sql`select 1`);
}
