import { pgTable, text, timestamp } from "drizzle-orm/pg-core";

/**
 * The SSH host key of the console front end. In the database rather than the
 * data directory so that every replica presents the same key: a user's
 * known_hosts entry must not depend on which replica answers.
 */
export const consoleHostKeys = pgTable("console_host_keys", {
  id: text("id").primaryKey(),
  algorithm: text("algorithm").notNull(),
  /** OpenSSH private key format, as ssh2 reads it. */
  privateKey: text("private_key").notNull(),
  /** "ssh-ed25519 AAAA…", as it goes into known_hosts. */
  publicKey: text("public_key").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

export type ConsoleHostKeyRow = typeof consoleHostKeys.$inferSelect;
