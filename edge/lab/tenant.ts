import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import type { TokenRolesSchema } from "../../gen/metal/api/v1/token_pb.js";
import { generateEd25519 } from "../../server/console/host-key.js";

const YEAR_SECONDS = 365n * 24n * 3600n;

/**
 * A token the lab keeps in `file` (mode 0600) and mints again only when it no
 * longer works (revoked, expired, a new database).
 */
export async function ensureToken(opts: {
  transport: Transport;
  file: string;
  subject: string;
  description: string;
  roles: MessageInitShape<typeof TokenRolesSchema>;
  verify: (token: string) => Promise<boolean>;
}): Promise<string> {
  const kept = await readFile(opts.file, "utf8").then(
    (s) => s.trim(),
    () => "",
  );
  if (kept !== "" && (await opts.verify(kept))) return kept;
  const { secret } = await createClient(AdminTokens, opts.transport).create({
    subject: opts.subject,
    description: opts.description,
    roles: opts.roles,
    expiresIn: { seconds: YEAR_SECONDS },
  });
  await writeFile(opts.file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/** The public keys the original metalctl puts into an allocation by default, in its order. */
export const DEFAULT_PUBLIC_KEYS = ["id_ed25519.pub", "id_rsa.pub", "id_dsa.pub"];

export interface TenantSshKey {
  /** The public key file `metalctl machine create` puts into the allocation. */
  publicKey: string;
  /** Set when the lab generated the pair (the user has none of the default keys): the private key, for `machine console -i`. */
  generated?: string;
}

/**
 * The user's own default key (~/.ssh/id_ed25519.pub, id_rsa.pub, id_dsa.pub)
 * when there is one, which metalctl and ssh then use without flags; else a
 * key pair the lab generates once in `dir` (never in ~/.ssh, which is the
 * user's).
 */
export async function tenantSshKey(home: string | undefined, dir: string): Promise<TenantSshKey> {
  for (const name of DEFAULT_PUBLIC_KEYS) {
    const path = home ? join(home, ".ssh", name) : "";
    if (path && existsSync(path)) return { publicKey: path };
  }
  const key = join(dir, "id_ed25519");
  if (!existsSync(key) || !existsSync(`${key}.pub`)) {
    const pair = generateEd25519();
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(key, pair.private, { mode: 0o600 });
    await writeFile(`${key}.pub`, `${pair.public.trim().split(/\s+/).slice(0, 2).join(" ")} metal-lab\n`, { mode: 0o644 });
  }
  return { publicKey: `${key}.pub`, generated: key };
}
