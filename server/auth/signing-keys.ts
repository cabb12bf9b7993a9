import { type CryptoKey, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import type { DbHandle } from "../db/handle.js";
import type { SigningKeyRow } from "../db/schema/index.js";
import { uuidv7 } from "../ids.js";
import { tokenRepository as tokens } from "../repositories/token-repository.js";

export const SIGNING_ALG = "EdDSA";

/**
 * How long after a rotation the older key may still be needed besides the
 * token rows made before it: machine credentials (at most 24 h, see
 * config.ts) and replica credentials (60 s) have no row, and an issue that
 * read the key just before a rotation committed writes a row a moment later.
 * One hour above the longest of them.
 */
export const KEY_HANDOVER_MS = 25 * 3600_000;
/** At most one reload of the keys per this long when a token names a key this replica does not know. */
const RELOAD_MIN_MS = 1_000;
/** Key ids as this control plane makes them ("k1", uuids); anything else is not worth a database read. */
const KEY_ID = /^[A-Za-z0-9-]{1,64}$/;

export interface SigningKeyInfo {
  id: string;
  createdAt: Date;
}

export interface RotationResult {
  key: SigningKeyInfo;
  /** Older keys that still verify unexpired tokens, newest first. */
  kept: SigningKeyInfo[];
  retiredIds: string[];
}

/** The keys that sign and verify tokens, as one replica sees them. */
export interface KeyRing {
  /** Makes the first key when the database has none (replicas starting together agree on it). */
  ensureFirst(): Promise<void>;
  /** The newest key in the database as read through `db` (a transaction, where the token row is written). */
  signer(db: DbHandle): Promise<{ kid: string; privateKey: CryptoKey }>;
  /**
   * The public key a token names; a key made on another replica since the
   * last read is found by reading the keys again (rate-limited, so tokens
   * naming made-up keys cost one read per second, not one per call).
   * Undefined for a key that does not exist.
   */
  publicKey(kid: string | undefined): Promise<CryptoKey | undefined>;
  /** The public key the header of `jwt` names; undefined for a malformed JWT or a key that does not exist. */
  keyFor(jwt: string): Promise<CryptoKey | undefined>;
  /** Makes a new newest key and deletes the keys no unexpired token can carry. */
  rotate(db: DbHandle): Promise<RotationResult>;
}

async function newKeyRow(id: string) {
  const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { crv: "Ed25519", extractable: true });
  return {
    id,
    algorithm: SIGNING_ALG,
    privateJwk: (await exportJWK(privateKey)) as Record<string, unknown>,
    publicJwk: (await exportJWK(publicKey)) as Record<string, unknown>,
  };
}

const infoOf = (r: SigningKeyRow): SigningKeyInfo => ({ id: r.id, createdAt: r.createdAt });

/** One replica's view of the signing keys; each credential kind keeps one (a few imported keys each). */
export function createKeyRing(db: DbHandle): KeyRing {
  const publicKeys = new Map<string, CryptoKey>();
  const privateKeys = new Map<string, CryptoKey>();
  let scheduled: Promise<void> | undefined;
  let lastReload = 0;

  async function reload(): Promise<void> {
    lastReload = Date.now();
    const rows = await tokens.signingKeys(db);
    for (const r of rows) {
      if (!publicKeys.has(r.id)) publicKeys.set(r.id, (await importJWK(r.publicJwk as JWK, SIGNING_ALG)) as CryptoKey);
    }
  }

  /** A reload that starts after this call (callers waiting together share it). */
  function freshReload(): Promise<void> {
    if (scheduled) return scheduled;
    const wait = Math.max(0, lastReload + RELOAD_MIN_MS - Date.now());
    const run = new Promise<void>((resolve) => setTimeout(resolve, wait)).then(() => {
      scheduled = undefined;
      return reload();
    });
    scheduled = run;
    return run;
  }

  return {
    async ensureFirst() {
      if (!(await tokens.newestSigningKey(db))) await tokens.insertSigningKeyIfAbsent(db, await newKeyRow("k1"));
      await reload();
    },

    async signer(handle) {
      const row = await tokens.newestSigningKey(handle);
      if (!row) throw new Error("no signing key in the database");
      let privateKey = privateKeys.get(row.id);
      if (!privateKey) {
        privateKey = (await importJWK(row.privateJwk as JWK, SIGNING_ALG)) as CryptoKey;
        privateKeys.set(row.id, privateKey);
      }
      return { kid: row.id, privateKey };
    },

    async publicKey(kid) {
      if (kid === undefined || !KEY_ID.test(kid)) return undefined;
      if (!publicKeys.has(kid)) await freshReload();
      return publicKeys.get(kid);
    },

    async keyFor(jwt) {
      let kid: string | undefined;
      try {
        kid = decodeProtectedHeader(jwt).kid;
      } catch {
        return undefined;
      }
      return this.publicKey(kid);
    },

    async rotate(handle) {
      await tokens.insertSigningKeyIfAbsent(handle, await newKeyRow(uuidv7()));
      const retiredIds = await tokens.retireSigningKeys(handle, KEY_HANDOVER_MS);
      for (const id of retiredIds) {
        publicKeys.delete(id);
        privateKeys.delete(id);
      }
      await reload();
      const [key, ...kept] = (await tokens.signingKeys(handle)).map(infoOf);
      return { key: key!, kept, retiredIds };
    },
  };
}
