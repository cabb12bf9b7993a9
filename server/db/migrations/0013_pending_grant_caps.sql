CREATE TABLE "pending_grant_caps" (
	"id" text PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"kind" text NOT NULL,
	"target_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "pending_grant_caps_key_idx" ON "pending_grant_caps" USING btree ("subject","kind","target_id");--> statement-breakpoint
CREATE INDEX "pending_grant_caps_created_at_idx" ON "pending_grant_caps" USING btree ("created_at");