import { sql } from "drizzle-orm";
import type { Db } from "../db/database.js";

/** Answers when the database answers a trivial query. */
export async function pingDatabase(db: Db<any>): Promise<void> {
  await db.execute(sql`select 1`);
}
