import { index, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/**
 * ID tokens already exchanged for a metal token (SignInService.Exchange), so
 * each is good once: the SHA-256 of the token, never the token. A row is kept
 * only while its token could still be accepted; later sign-ins delete the
 * rows past that.
 */
export const signInProofs = pgTable(
  "sign_in_proofs",
  {
    digest: text("digest").primaryKey(),
    /** The last moment the ID token could pass verification (its expiry or its maximum age, whichever is first, plus the clock tolerance). */
    usableUntil: timestamp("usable_until", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [index("sign_in_proofs_usable_until_idx").on(t.usableUntil)],
);
