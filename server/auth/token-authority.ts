import { Code, ConnectError } from "@connectrpc/connect";
import { type CryptoKey, SignJWT } from "jose";
import { toRoles, toStoredRoles } from "../convert/token.js";
import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import type { StoredRoles, TokenRow } from "../db/schema/index.js";
import { noteCreated } from "../db/transaction-hook.js";
import type { Principal, Roles } from "../domain/roles.js";
import { refreshedExpiry, refreshRefusal } from "../domain/token-refresh.js";
import { failedPrecondition, notFound, permissionDenied, unauthenticated } from "../errors.js";
import { uuidv7 } from "../ids.js";
import { tokenRepository as tokens } from "../repositories/token-repository.js";
import type { RevocationFanout } from "./revocation.js";
import { createKeyRing, type RotationResult, SIGNING_ALG } from "./signing-keys.js";
import { createSignatureCheck, TOKEN_ISSUER } from "./token-signatures.js";

const ISSUER = TOKEN_ISSUER;
const ALG = SIGNING_ALG;
/** How long a replica trusts its cached view of a token row (a revocation on another replica that did not reach it over the bus shows after this). */
const ROW_CACHE_MS = 5_000;
const ROW_CACHE_MAX = 10_000;

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
  /**
   * With parentId: what the new token grants beyond the parent's roles as
   * they are now (read under the parent's lock, after any concurrent cap or
   * removal committed); a non-empty answer refuses the mint (PermissionDenied).
   */
  excessOverParent?: (parentRoles: Roles) => string[];
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
  /**
   * A subject's membership in a tenant or project was removed (`max` 0) or
   * lowered to `max`: every token of that subject keeps at most that grant
   * there, at once on every replica; a token left with no grant at all is
   * revoked (with what was minted from it), as in dropProjectGrants. A
   * higher role is never granted here: it shows in tokens issued later.
   */
  capSubjectGrant(db: DbHandle, subject: string, scope: { tenant: string } | { project: string }, max: number): Promise<void>;
  /**
   * Replaces a token by a new one of the same subject, description, roles,
   * parent and lifetime (counted from now, never past the parent's expiry);
   * in one transaction the old one is revoked and what was minted from it
   * moves under the new one. NotFound for no such token, FailedPrecondition
   * for a revoked or expired one.
   */
  refresh(db: DbHandle, tokenId: string, createdBy: string): Promise<{ row: TokenRow; secret: string; revoked: TokenRow }>;
  /** A new key signs from now on (on every replica); keys no unexpired token carries are deleted. */
  rotateSigningKey(db: DbHandle): Promise<RotationResult>;
  /** Drops a token from this replica's cache, e.g. right after revoking it. */
  forget(tokenId: string): void;
}

const grantsNothing = (r: StoredRoles) => r.admin === 0 && Object.keys(r.projects).length === 0 && Object.keys(r.tenants).length === 0 && r.infraPartition === "";

export interface TokenAuthorityOptions {
  /** Carries revocations to the other replicas' caches (several replicas); without it each replica relies on the cache bound. */
  revocations?: RevocationFanout;
}

/**
 * Loads the signing keys from the database, creating the first on the very
 * first start. All replicas share them, so any of them verifies any token;
 * each issue signs with the newest key in the database, so a rotation on one
 * replica is used by all from their next issue on.
 */
export async function createTokenAuthority(db: DbHandle, options: TokenAuthorityOptions = {}): Promise<TokenAuthority> {
  const { revocations } = options;
  const keys = createKeyRing(db);
  await keys.ensureFirst();
  // The lookup itself is cached, so the calls that find an entry expired together share one query.
  const cache = new Map<string, { row: Promise<TokenRow | undefined>; at: number }>();
  // Each secret's signature is verified once (token-signatures.ts); revocation is the row's business (tokenRow, every call).

  const claimsOf = createSignatureCheck((secret) => keys.keyFor(secret));

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

  function sign(signer: { kid: string; privateKey: CryptoKey }, row: TokenRow): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: ALG, kid: signer.kid })
      .setIssuer(ISSUER)
      .setSubject(row.subject)
      .setJti(row.id)
      .setIssuedAt()
      .setExpirationTime(Math.floor(row.expiresAt.getTime() / 1000))
      .sign(signer.privateKey);
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
      // The key is read before the row is written (see KEY_HANDOVER_MS).
      const write = async (handle: DbHandle) => {
        const signer = await keys.signer(handle);
        if (parentId !== undefined) {
          const parent = await tokens.holdLiveParent(handle, parentId);
          const excess = req.excessOverParent?.(toRoles(parent.roles)) ?? [];
          if (excess.length > 0) throw permissionDenied(`permission denied: a token can only grant what yours holds: ${excess.join("; ")}`);
        }
        const row = await tokens.create(handle, values);
        noteCreated(row.id);
        return { signer, row };
      };
      const { signer, row } = parentId === undefined ? await write(db) : await inTransaction(db, write);
      return { row, secret: await sign(signer, row) };
    },

    async refresh(db, tokenId, createdBy) {
      const result = await inTransaction(db, async (tx) => {
        // The parent is locked before the token, in the order revocations and mints lock them.
        const parentId = (await tokens.find(tx, tokenId))?.parentId ?? null;
        const parentExpiresAt = parentId === null ? undefined : await tokens.holdParent(tx, parentId);
        const old = await tokens.lockForUpdate(tx, tokenId);
        if (!old) throw notFound("token", tokenId);
        const now = Date.now();
        const refusal = refreshRefusal(old, now);
        if (refusal) throw failedPrecondition(`token "${tokenId}" ${refusal}; it cannot be refreshed`);
        if (old.parentId !== parentId) throw new ConnectError(`token "${tokenId}" changed meanwhile; try again`, Code.Aborted);
        const signer = await keys.signer(tx);
        const row = await tokens.create(tx, {
          id: uuidv7(),
          subject: old.subject,
          description: old.description,
          roles: old.roles,
          createdBy,
          expiresAt: refreshedExpiry(old, now, parentExpiresAt),
          parentId: old.parentId,
          bootstrap: old.bootstrap,
        });
        noteCreated(row.id);
        await tokens.moveChildren(tx, old.id, row.id);
        const revoked = await tokens.revokeOne(tx, old.id);
        // Signed before the commit: when signing fails the old token stays as it was.
        return { row, revoked, secret: await sign(signer, row) };
      });
      await forgetEverywhere([result.revoked]);
      return result;
    },

    rotateSigningKey(db) {
      return keys.rotate(db);
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

    async capSubjectGrant(db, subject, scope, max) {
      const [kind, id] = "tenant" in scope ? (["tenants", scope.tenant] as const) : (["projects", scope.project] as const);
      const changed = await inTransaction(db, async (tx) => {
        const rows = await tokens.capSubjectGrant(tx, subject, kind, id, max);
        const emptied = rows.filter((r) => !r.revokedAt && grantsNothing(r.roles));
        for (const r of emptied) rows.push(...(await tokens.revokeCascade(tx, r.id)));
        return rows;
      });
      await forgetEverywhere(changed);
    },

    forget(tokenId) {
      cache.delete(tokenId);
    },
  };
}
