import { eq } from "drizzle-orm";
import ssh2 from "ssh2";
import type { Db } from "../db/database.js";
import { consoleHostKeys, type ConsoleHostKeyRow } from "../db/schema/index.js";

const KEY_ID = "default";

/**
 * The console's SSH host key, created on the very first start. Replicas that
 * start together each generate one, but only the first insert wins and every
 * replica then reads that one, so all of them present the same key.
 * (The host key is the console front end's alone, which is why this lives
 * beside it rather than in repositories/.)
 */
export async function loadOrCreateHostKey(db: Db<any>): Promise<ConsoleHostKeyRow> {
  const existing = await readHostKey(db);
  if (existing) return existing;
  const pair = ssh2.utils.generateKeyPairSync("ed25519");
  await db
    .insert(consoleHostKeys)
    .values({ id: KEY_ID, algorithm: "ssh-ed25519", privateKey: pair.private, publicKey: pair.public.trim() })
    .onConflictDoNothing();
  const row = await readHostKey(db);
  if (!row) throw new Error("the console host key vanished right after it was stored");
  return row;
}

async function readHostKey(db: Db<any>): Promise<ConsoleHostKeyRow | undefined> {
  const rows = await db.select().from(consoleHostKeys).where(eq(consoleHostKeys.id, KEY_ID));
  return rows[0];
}
