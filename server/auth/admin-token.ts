import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import { AdminRole, noRoles } from "../domain/roles.js";
import { tokenRepository as tokens } from "../repositories/token-repository.js";
import type { TokenAuthority } from "./token-authority.js";

const ADMIN_TOKEN_TTL_MS = 365 * 24 * 3600_000;

export interface AdminTokenOptions {
  /**
   * The operator asked for a new bootstrap token (`metal-api --reset-admin-token`):
   * every earlier one is revoked and a new one is written to the file.
   */
  reset?: boolean;
}

export interface AdminToken {
  /** The secret, "" when there is no working bootstrap token (see `problem`). */
  token: string;
  /** Issued by this call (first start, or a reset). */
  created: boolean;
  /** `$METAL_DATA_DIR/admin-token`, mode 0600. */
  path: string;
  /** Why there is no working bootstrap token and what the operator can do; undefined when there is one. */
  problem?: string;
}

/**
 * The operator admin token metal-api issues on its own, in
 * `$METAL_DATA_DIR/admin-token` (mode 0600; never printed: callers log the path).
 *
 * It is issued once per database, on the first start. After that it is never
 * issued again on its own: an operator who revoked it (or let it expire, or
 * lost the file) keeps it that way until they ask for a new one with
 * `reset`, which revokes every earlier bootstrap token first.
 */
export async function ensureAdminToken(db: DbHandle, authority: TokenAuthority, dataDir: string, opts: AdminTokenOptions = {}): Promise<AdminToken> {
  const path = join(dataDir, "admin-token");
  if (!opts.reset) {
    const existing = await readFile(path, "utf8").then(
      (s) => s.trim(),
      () => "",
    );
    if (existing !== "") {
      const verdict = await authority.verify(existing).then(
        (p) => (p.roles.adminRole === AdminRole.ADMIN ? undefined : "it is not an operator admin token"),
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      if (verdict === undefined) return { token: existing, created: false, path };
      if (await tokens.bootstrapWasIssued(db)) return { token: "", created: false, path, problem: unusable(path, verdict) };
    }
  }
  const secret = await inTransaction(db, async (tx) => {
    // Replicas starting together on a fresh database issue one token, not one each.
    await tokens.lockBootstrap(tx);
    if (opts.reset) {
      for (const id of await tokens.liveBootstrapIds(tx)) await authority.revoke(tx, id);
    } else if (await tokens.bootstrapWasIssued(tx)) {
      return undefined;
    }
    const issued = await authority.issue(tx, {
      subject: "admin",
      description: opts.reset ? "operator admin token re-issued by --reset-admin-token" : "operator admin token created on first start",
      roles: { ...noRoles(), adminRole: AdminRole.ADMIN },
      createdBy: "metal-api",
      expiresAt: new Date(Date.now() + ADMIN_TOKEN_TTL_MS),
      bootstrap: true,
    });
    return issued.secret;
  });
  if (secret === undefined) {
    return { token: "", created: false, path, problem: `${path} holds no admin token and one was issued before; ${RESET_HINT}` };
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFile(path, `${secret}\n`, { mode: 0o600 });
  // The mode above applies only to a new file; one that was there keeps its own.
  await chmod(path, 0o600);
  return { token: secret, created: true, path };
}

const RESET_HINT = "it is not issued again on its own: use your own operator token, or start metal-api once with --reset-admin-token to revoke every earlier bootstrap token and write a new one";

const unusable = (path: string, why: string) => `the admin token in ${path} does not work (${why}); ${RESET_HINT}`;
