import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Db } from "../db/database.js";
import { AdminRole, noRoles } from "../domain/roles.js";
import type { TokenAuthority } from "./token-authority.js";

const ADMIN_TOKEN_TTL_MS = 365 * 24 * 3600_000;

/**
 * Makes sure `$METAL_DATA_DIR/admin-token` holds a working operator admin
 * token: on first start (or when the stored one no longer verifies, e.g. the
 * database was replaced) a new one is issued and written with mode 0600.
 * Returns the token and whether it was created now.
 */
export async function ensureAdminToken(db: Db<any>, authority: TokenAuthority, dataDir: string): Promise<{ token: string; created: boolean; path: string }> {
  const path = join(dataDir, "admin-token");
  const existing = await readFile(path, "utf8").then((s) => s.trim(), () => "");
  if (existing !== "") {
    const ok = await authority.verify(existing).then((p) => p.roles.adminRole === AdminRole.ADMIN, () => false);
    if (ok) return { token: existing, created: false, path };
  }
  const { secret } = await authority.issue(db, {
    subject: "admin",
    description: "operator admin token created on first start",
    roles: { ...noRoles(), adminRole: AdminRole.ADMIN },
    createdBy: "metal-api",
    expiresAt: new Date(Date.now() + ADMIN_TOKEN_TTL_MS),
  });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFile(path, `${secret}\n`, { mode: 0o600 });
  return { token: secret, created: true, path };
}
