import { eq, sql } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import { signingKeys, tokens } from "../../db/schema/index.js";

/** A signing key's public half, as masterdata-api may read it. */
export interface PublicSigningKey {
  id: string;
  algorithm: string;
  publicJwk: Record<string, unknown>;
}

/** What masterdata-api needs of a token row to decide a call: who, what roles, still valid. */
export interface TokenGrant {
  id: string;
  subject: string;
  roles: typeof tokens.$inferSelect.roles;
  expiresAt: Date;
  revokedAt: Date | null;
}

/**
 * masterdata-api's reads of the metal database. Only named columns: the
 * private keys are never selected, so a role granted SELECT on exactly these
 * columns (docs/masterdata-api.md) is enough, and masterdata-api can verify
 * metal tokens but never sign one.
 */
export const metalCredentialRepository = {
  async publicSigningKeys(db: DbHandle): Promise<PublicSigningKey[]> {
    return db.select({ id: signingKeys.id, algorithm: signingKeys.algorithm, publicJwk: signingKeys.publicJwk }).from(signingKeys).orderBy(sql`${signingKeys.createdAt} desc, ${signingKeys.id} desc`);
  },

  async tokenGrant(db: DbHandle, id: string): Promise<TokenGrant | undefined> {
    const [row] = await db.select({ id: tokens.id, subject: tokens.subject, roles: tokens.roles, expiresAt: tokens.expiresAt, revokedAt: tokens.revokedAt }).from(tokens).where(eq(tokens.id, id));
    return row;
  },
};
