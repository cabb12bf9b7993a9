CREATE TABLE "audit_entries" (
	"id" text PRIMARY KEY NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"subject" text NOT NULL,
	"token_id" text NOT NULL,
	"method" text NOT NULL,
	"target_ids" text[] NOT NULL,
	"request_id" text NOT NULL,
	"outcome" text NOT NULL,
	"error_message" text NOT NULL,
	"request" jsonb NOT NULL,
	"project" text
);
--> statement-breakpoint
CREATE INDEX "audit_entries_at_idx" ON "audit_entries" USING btree ("at");--> statement-breakpoint
CREATE INDEX "audit_entries_project_idx" ON "audit_entries" USING btree ("project","id");