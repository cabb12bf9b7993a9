import { type CryptoKey, decodeProtectedHeader, importJWK, type JWK } from "jose";
import { SIGNING_ALG } from "../../auth/signing-keys.js";
import type { DbHandle } from "../../db/handle.js";
import { metalCredentialRepository } from "../repositories/metal-credential-repository.js";

/** At most one reload of the keys per this long when a token names a key not loaded yet (as metal-api's key ring). */
const RELOAD_MIN_MS = 1_000;
/** Key ids as the control plane makes them ("k1", uuids); anything else is not worth a database read. */
const KEY_ID = /^[A-Za-z0-9-]{1,64}$/;

/** The control plane's public signing keys, as masterdata-api reads them from the metal database. */
export interface PublicKeyRing {
  /** Loads the keys now; fails when there are none (metal-api has not started on that database yet). */
  load(): Promise<void>;
  /** The key the JWT's header names, or undefined for a malformed JWT or a key that does not exist. */
  keyFor(jwt: string): Promise<CryptoKey | undefined>;
}

/**
 * Public halves only (see metalCredentialRepository). A key rotated in on
 * metal-api is found by reading the keys again when a token names one not
 * known here, at most once a second, so tokens naming made-up keys cost one
 * read per second, not one per call; a retired key stays until restart, but
 * every token it signed has expired by then (KEY_HANDOVER_MS).
 */
export function createPublicKeyRing(db: DbHandle): PublicKeyRing {
  const keys = new Map<string, CryptoKey>();
  let scheduled: Promise<void> | undefined;
  let lastReload = 0;

  async function reload(): Promise<void> {
    lastReload = Date.now();
    for (const r of await metalCredentialRepository.publicSigningKeys(db)) {
      if (r.algorithm !== SIGNING_ALG || keys.has(r.id)) continue;
      keys.set(r.id, (await importJWK(r.publicJwk as JWK, SIGNING_ALG)) as CryptoKey);
    }
  }

  function freshReload(): Promise<void> {
    if (scheduled) return scheduled;
    const wait = Math.max(0, lastReload + RELOAD_MIN_MS - Date.now());
    scheduled = new Promise<void>((r) => setTimeout(r, wait)).then(() => {
      scheduled = undefined;
      return reload();
    });
    return scheduled;
  }

  return {
    async load() {
      await reload();
      if (keys.size === 0) throw new Error("the metal database has no signing key yet: start metal-api on it first");
    },
    async keyFor(jwt) {
      let kid: string | undefined;
      try {
        kid = decodeProtectedHeader(jwt).kid;
      } catch {
        return undefined;
      }
      if (kid === undefined || !KEY_ID.test(kid)) return undefined;
      if (!keys.has(kid)) await freshReload();
      return keys.get(kid);
    },
  };
}
