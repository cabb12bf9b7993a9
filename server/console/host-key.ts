import ssh2 from "ssh2";
import type { DbHandle } from "../db/handle.js";
import type { ConsoleHostKeyRow } from "../db/schema/index.js";
import { consoleHostKeyRepository as hostKeys } from "../repositories/console-host-key-repository.js";

const KEY_ID = "default";

/**
 * The console's SSH host key, created on the very first start. Replicas that
 * start together each generate one, but only the first insert wins and every
 * replica then reads that one, so all of them present the same key.
 */
export async function loadOrCreateHostKey(db: DbHandle): Promise<ConsoleHostKeyRow> {
  const existing = await hostKeys.get(db, KEY_ID);
  if (existing) return existing;
  const pair = generateEd25519();
  await hostKeys.insertIfMissing(db, { id: KEY_ID, algorithm: "ssh-ed25519", privateKey: pair.private, publicKey: pair.public.trim() });
  const row = await hostKeys.get(db, KEY_ID);
  if (!row) throw new Error("the console host key vanished right after it was stored");
  return row;
}

/**
 * An ed25519 key pair in OpenSSH format. ssh2's generator drops leading zero
 * bytes of the key material (about one key in 300), producing a key that it
 * then cannot read back; such a pair is thrown away and another made, and the
 * kept one has signed and verified once.
 */
export function generateEd25519(): { private: string; public: string } {
  for (let i = 0; i < 100; i++) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519");
    const parsed = ssh2.utils.parseKey(pair.private);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error) continue;
    const probe = Buffer.from("metal-console host key check");
    const signature = key.sign(probe);
    if (signature instanceof Error || key.verify(probe, signature) !== true) continue;
    return pair;
  }
  throw new Error("could not generate a readable ed25519 key");
}
