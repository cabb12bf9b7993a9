import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable, Transform } from "node:stream";

/**
 * Encryption of backups: AES-256-GCM per part, keys derived with HKDF-SHA256
 * from the backup key (METAL_BACKUP_KEY_FILE). A part is
 *   MAGIC (8 bytes) | nonce (12) | ciphertext | tag (16)
 * with the backup id and part name as additional data, so a part cannot be
 * moved into another backup or under another name unnoticed.
 */

export const MAGIC = Buffer.from("MTLBK\x001\x00", "latin1");
const NONCE = 12;
const TAG = 16;
export const OVERHEAD = MAGIC.length + NONCE + TAG;

export class BackupKeyError extends Error {}

/** The three keys a backup key stands for. */
export interface BackupKeys {
  encrypt: Buffer;
  mac: Buffer;
  check: Buffer;
}

/**
 * The backup key from a key file's content: 64 hex digits, base64 of 32
 * bytes, or exactly 32 raw bytes (`openssl rand -hex 32 > key`).
 */
export function parseKey(content: Buffer): Buffer {
  const text = content.toString("latin1").trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) {
    const b = Buffer.from(text, "base64");
    if (b.length === 32) return b;
  }
  // 32 printable characters are a password someone typed, not 32 random bytes (random ones are all printable once in 10^14): refused, as a weak key would be guessed offline against the manifest's key check.
  if (content.length === 32 && !/^[\x20-\x7e]{32}$/.test(content.toString("latin1"))) return Buffer.from(content);
  throw new BackupKeyError("the backup key file must hold 32 bytes: 64 hex digits (openssl rand -hex 32), base64 of 32 bytes, or 32 random raw bytes (not typed text)");
}

export function deriveKeys(key: Buffer): BackupKeys {
  const derive = (info: string) => Buffer.from(hkdfSync("sha256", key, "metal-backup", info, 32));
  return { encrypt: derive("encrypt"), mac: derive("manifest-mac"), check: derive("key-check") };
}

/** What the manifest records to tell a wrong key at once. */
export const keyCheck = (keys: BackupKeys): string => createHmac("sha256", keys.check).update("metal-backup key check").digest("hex").slice(0, 32);

export const manifestMac = (keys: BackupKeys, input: string): string => createHmac("sha256", keys.mac).update(input).digest("hex");

export function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

const aad = (backupId: string, file: string) => Buffer.from(`${backupId}/${file}`, "utf8");

/** A transform that turns a plain part into an encrypted one (header first, tag last). */
export function encryptingTransform(keys: BackupKeys, backupId: string, file: string): Transform {
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv("aes-256-gcm", keys.encrypt, nonce);
  cipher.setAAD(aad(backupId, file));
  let headerSent = false;
  const header = (t: Transform) => {
    if (!headerSent) t.push(Buffer.concat([MAGIC, nonce]));
    headerSent = true;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      header(this);
      done(null, cipher.update(chunk));
    },
    flush(done) {
      header(this);
      this.push(cipher.final());
      this.push(cipher.getAuthTag());
      done();
    },
  });
}

export class PartDecryptError extends Error {}

/** Reads the header and tag of an encrypted part, without its body. */
async function frame(path: string, file: string): Promise<{ size: number; nonce: Buffer; tag: Buffer }> {
  const fh = await open(path, "r");
  try {
    const size = (await fh.stat()).size;
    if (size < OVERHEAD) throw new PartDecryptError(`${file} is too short to be an encrypted part (truncated)`);
    const head = Buffer.alloc(MAGIC.length + NONCE);
    const tag = Buffer.alloc(TAG);
    await fh.read(head, 0, head.length, 0);
    await fh.read(tag, 0, TAG, size - TAG);
    if (!head.subarray(0, MAGIC.length).equals(MAGIC)) throw new PartDecryptError(`${file} is not an encrypted metal-backup part`);
    return { size, nonce: head.subarray(MAGIC.length), tag };
  } finally {
    await fh.close();
  }
}

/**
 * A readable of the plain content of an encrypted part file. The tag is
 * checked at the end: the stream fails with PartDecryptError when the part
 * was altered or the key is wrong.
 */
export async function decryptingStream(keys: BackupKeys, backupId: string, file: string, path: string): Promise<Readable> {
  const { size, nonce, tag } = await frame(path, file);
  const decipher = createDecipheriv("aes-256-gcm", keys.encrypt, nonce);
  decipher.setAAD(aad(backupId, file));
  decipher.setAuthTag(tag);
  const start = MAGIC.length + NONCE;
  const body: Readable = size === OVERHEAD ? Readable.from([]) : createReadStream(path, { start, end: size - TAG - 1 });
  const plain = new Transform({
    transform(chunk: Buffer, _enc, done) {
      done(null, decipher.update(chunk));
    },
    flush(done) {
      try {
        this.push(decipher.final());
        done();
      } catch {
        done(new PartDecryptError(`${file} does not decrypt: it was altered, or the key is not the one it was made with`));
      }
    },
  });
  body.on("error", (err) => plain.destroy(err));
  return body.pipe(plain);
}
