import { index, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/**
 * The audit trail (docs/audit.md): one row per mutating call and per console
 * session open. Written in the transaction of the change when the change is
 * in this database (server/db/transaction-hook.ts), else after the call in
 * one of its own. Ids are UUIDv7, so ordering by id is ordering by time.
 */
export const auditEntries = pgTable(
  "audit_entries",
  {
    id: text("id").primaryKey(),
    at: timestamp("at", { withTimezone: true, mode: "date" }).notNull(),
    subject: text("subject").notNull(),
    tokenId: text("token_id").notNull(),
    method: text("method").notNull(),
    targetIds: text("target_ids").array().notNull(),
    requestId: text("request_id").notNull(),
    /** "ok" or a Connect code name ("already_exists"). */
    outcome: text("outcome").notNull(),
    errorMessage: text("error_message").notNull(),
    /** The request as proto JSON, secrets redacted (server/domain/audit-redaction.ts). */
    request: jsonb("request").$type<Record<string, unknown>>().notNull(),
    /** The project the call concerned (tenants see their projects' entries); null outside any. */
    project: text("project"),
  },
  // Few indexes: every mutating call pays for each. `at` serves pruning and time ranges, `project` the tenants' lists.
  (t) => [index("audit_entries_at_idx").on(t.at), index("audit_entries_project_idx").on(t.project, t.id)],
);

export type AuditRow = typeof auditEntries.$inferSelect;
