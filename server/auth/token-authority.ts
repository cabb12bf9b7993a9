import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, jwtVerify, SignJWT } from "jose";
import { toRoles, toStoredRoles } from "../convert/token.js";
import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import type { StoredRoles, TokenRow } from "../db/schema/index.js";
import type { Principal, Roles } from "../domain/roles.js";
import { unauthenticated } from "../errors.js";
import { uuidv7 } from "../ids.js";
import { tokenRepository as tokens } from "../repositories/token-repository.js";
import type { RevocationFanout } from "./revocation.js";

const ISSUER = "metal";
const ALG = "EdDSA";
/** How long a replica trusts its cached view of a token row (a revocation on another replica that did not reach it over the bus shows after this). */
const ROW_CACHE_MS = 5_000;
const ROW_CACHE_MAX = 10_000;
/** Bearer secrets whose signature this replica has checked (bounded like the row cache). */
const SIGNATURE_CACHE_MAX = 10_000;

export interface IssueRequest {
  subject: string;
  description: string;
  roles: Roles;
  createdBy: string;
  expiresAt: Date;
  /**
   * The token this one is minted from (self-service TokenService.Create):
   * revoking the parent revokes this one too, and a revoked parent mints nothing.
   */
  parentId?: string;
  /** The operator admin token metal-api issues on its own (see admin-token.ts). */
  bootstrap?: boolean;
}

/** Issues and verifies the control plane's bearer tokens. */
export interface TokenAuthority {
  issue(db: DbHandle, req: IssueRequest): Promise<{ row: TokenRow; secret: string }>;
  /** The principal behind a bearer secret; Unauthenticated when it is invalid, expired or revoked. */
  verify(secret: string): Promise<Principal>;
  /**
   * Revokes a token and every token minted from it (at any depth), in the
   * database and in this replica's cache. With a revocation fan-out it then
   * tells the other replicas and returns once the live ones dropped the
   * tokens (bounded); otherwise, or when they do not answer, they notice
   * within the cache bound (5 s). Returns the token and then every token
   * revoked now.
   */
  revoke(db: DbHandle, tokenId: string): Promise<TokenRow[]>;
  /**
   * A project was deleted: every token loses its grant on it, and a token
   * left with no grant at all is revoked (with what was minted from it).
   * Project ids are never reused, so no later project inherits the grant.
   */
  dropProjectGrants(db: DbHandle, projectId: string): Promise<void>;
  /** Drops a token from this replica's cache, e.g. right after revoking it. */
  forget(tokenId: string): void;
}

const grantsNothing = (r: StoredRoles) => r.admin === 0 && Object.keys(r.projects).length === 0 && Object.keys(r.tenants).length === 0 && r.infraPartition === "";

export interface TokenAuthorityOptions {
  /** Carries revocations to the other replicas' caches (several replicas); without it each replica relies on the cache bound. */
  revocations?: RevocationFanout;
}

/**
 * Loads the signing key from the database, creating it on the very first
 * start. All replicas share it, so any of them verifies any token.
 */
export async function createTokenAuthority(db: DbHandle, options: TokenAuthorityOptions = {}): Promise<TokenAuthority> {
  const { revocations } = options;
  let keyRow = await tokens.newestSigningKey(db);
  if (!keyRow) {
    const { privateKey, publicKey } = await generateKeyPair(ALG, { crv: "Ed25519", extractable: true });
    await tokens.insertSigningKeyIfAbsent(db, {
      id: "k1",
      algorithm: ALG,
      privateJwk: (await exportJWK(privateKey)) as Record<string, unknown>,
      publicJwk: (await exportJWK(publicKey)) as Record<string, unknown>,
    });
    keyRow = (await tokens.newestSigningKey(db))!;
  }
  const kid = keyRow.id;
  const privateKey = (await importJWK(keyRow.privateJwk as JWK, ALG)) as CryptoKey;
  const publicKey = (await importJWK(keyRow.publicJwk as JWK, ALG)) as CryptoKey;
  // The lookup itself is cached, so the calls that find an entry expired together share one query.
  const cache = new Map<string, { row: Promise<TokenRow | undefined>; at: number }>();
  // A token's signature and claims never change, so each secret is verified once (an Ed25519 verify was
  // the largest cost of a unary read); only secrets that verified are kept, so garbage cannot fill this.
  // Expiry is still checked on every call, and revocation is the row's business (tokenRow, every call).
  const signatures = new Map<string, { jti: string | undefined; exp: number | undefined }>();

  async function claimsOf(secret: string): Promise<{ jti: string | undefined; exp: number | undefined }> {
    const known = signatures.get(secret);
    if (known) {
      if (known.exp !== undefined && known.exp <= Math.floor(Date.now() / 1000)) throw unauthenticated("the token has expired");
      return known;
    }
    let claims: { jti: string | undefined; exp: number | undefined };
    try {
      const { payload } = await jwtVerify(secret, publicKey, { issuer: ISSUER, algorithms: [ALG] });
      claims = { jti: payload.jti, exp: payload.exp };
    } catch (err) {
      const reason = (err as { code?: string }).code === "ERR_JWT_EXPIRED" ? "the token has expired" : "the token is not valid";
      throw unauthenticated(reason);
    }
    if (signatures.size >= SIGNATURE_CACHE_MAX) signatures.clear();
    signatures.set(secret, claims);
    return claims;
  }

  function tokenRow(id: string): Promise<TokenRow | undefined> {
    const hit = cache.get(id);
    if (hit && Date.now() - hit.at < ROW_CACHE_MS) return hit.row;
    if (cache.size >= ROW_CACHE_MAX) cache.clear();
    const entry = { row: tokens.find(db, id), at: Date.now() };
    cache.set(id, entry);
    // A failed lookup is not remembered: the next call asks again.
    entry.row.catch(() => cache.get(id) === entry && cache.delete(id));
    return entry.row;
  }

  // Another replica revoked (or changed) these tokens: the next call reads their rows again.
  revocations?.onRevoked((ids) => {
    for (const id of ids) cache.delete(id);
  });

  /**
   * After the change committed: this replica's cache first, then the others'.
   * Called inside a caller's transaction (only --reset-admin-token does), the
   * others may read the row before that commits and keep it for the cache bound.
   */
  async function forgetEverywhere(rows: readonly TokenRow[]): Promise<void> {
    for (const r of rows) cache.delete(r.id);
    await revocations?.announce(rows.map((r) => r.id));
  }

  return {
    async issue(db, req) {
      const id = uuidv7();
      const values = {
        id,
        subject: req.subject,
        description: req.description,
        roles: toStoredRoles(req.roles),
        createdBy: req.createdBy,
        expiresAt: req.expiresAt,
        parentId: req.parentId ?? null,
        bootstrap: req.bootstrap ?? false,
      };
      const parentId = req.parentId;
      const row =
        parentId === undefined
          ? await tokens.create(db, values)
          : await inTransaction(db, async (tx) => {
              await tokens.holdLiveParent(tx, parentId);
              return tokens.create(tx, values);
            });
      const secret = await new SignJWT({})
        .setProtectedHeader({ alg: ALG, kid })
        .setIssuer(ISSUER)
        .setSubject(req.subject)
        .setJti(id)
        .setIssuedAt()
        .setExpirationTime(Math.floor(req.expiresAt.getTime() / 1000))
        .sign(privateKey);
      return { row, secret };
    },

    async verify(secret) {
      const { jti } = await claimsOf(secret);
      const row = jti ? await tokenRow(jti) : undefined;
      if (!row) throw unauthenticated("the token is not known to this control plane");
      if (row.revokedAt) throw unauthenticated("the token has been revoked");
      if (row.expiresAt.getTime() <= Date.now()) throw unauthenticated("the token has expired");
      return { tokenId: row.id, subject: row.subject, expiresAt: row.expiresAt, roles: toRoles(row.roles) };
    },

    async revoke(db, tokenId) {
      const revoked = await inTransaction(db, (tx) => tokens.revokeCascade(tx, tokenId));
      await forgetEverywhere(revoked);
      return revoked;
    },

    async dropProjectGrants(db, projectId) {
      const changed = await inTransaction(db, async (tx) => {
        const rows = await tokens.dropProjectGrant(tx, projectId);
        const emptied = rows.filter((r) => !r.revokedAt && grantsNothing(r.roles));
        for (const r of emptied) rows.push(...(await tokens.revokeCascade(tx, r.id)));
        return rows;
      });
      // A token that only lost the grant changed too: no replica may keep authorising it on the project.
      await forgetEverywhere(changed);
    },

    forget(tokenId) {
      cache.delete(tokenId);
    },
  };
}
