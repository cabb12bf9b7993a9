import { type AnyPgColumn, boolean, index, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/** Roles as stored: the numeric values of the proto enums, so the two never drift apart. */
export interface StoredRoles {
  admin: number;
  projects: Record<string, number>;
  tenants: Record<string, number>;
  infraPartition: string;
}

/** Every issued token; the JWT only carries the id, so roles and revocation live here. */
export const tokens = pgTable(
  "tokens",
  {
    id: text("id").primaryKey(),
    subject: text("subject").notNull(),
    description: text("description").notNull().default(""),
    roles: jsonb("roles").$type<StoredRoles>().notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    revokedAt: timestamp("revoked_at", { withTimezone: true, mode: "date" }),
    /** The token this one was minted from (self-service TokenService.Create); revoking a token revokes its descendants. */
    parentId: text("parent_id").references((): AnyPgColumn => tokens.id, { onDelete: "restrict" }),
    /** The operator admin token metal-api issued on its own: issued once per database, re-issued only on an explicit reset. */
    bootstrap: boolean("bootstrap").notNull().default(false),
  },
  (t) => [index("tokens_parent_id_idx").on(t.parentId)],
);

/** Keys that sign tokens; in the database so that every replica verifies every token. */
export const signingKeys = pgTable("signing_keys", {
  id: text("id").primaryKey(),
  algorithm: text("algorithm").notNull(),
  privateJwk: jsonb("private_jwk").$type<Record<string, unknown>>().notNull(),
  publicJwk: jsonb("public_jwk").$type<Record<string, unknown>>().notNull(),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

export type TokenRow = typeof tokens.$inferSelect;
export type NewTokenRow = typeof tokens.$inferInsert;
export type SigningKeyRow = typeof signingKeys.$inferSelect;

/**
 * Membership removals whose token caps may not have happened yet (an
 * outbox): written before masterdata ends the membership, deleted once the
 * member's tokens are capped. A row left behind (metal-api's database away
 * for a moment between the two steps) is capped by the removal's retry or by
 * the sweep (server/jobs/grant-cap-sweep.ts), to the member's current role.
 */
export const pendingGrantCaps = pgTable(
  "pending_grant_caps",
  {
    id: text("id").primaryKey(),
    subject: text("subject").notNull(),
    /** "tenant" or "project". */
    kind: text("kind").notNull(),
    targetId: text("target_id").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [index("pending_grant_caps_key_idx").on(t.subject, t.kind, t.targetId), index("pending_grant_caps_created_at_idx").on(t.createdAt)],
);

export type PendingGrantCapRow = typeof pendingGrantCaps.$inferSelect;
