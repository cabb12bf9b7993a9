ALTER TABLE "tokens" ADD COLUMN "parent_id" text;--> statement-breakpoint
ALTER TABLE "tokens" ADD COLUMN "bootstrap" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "tokens" ADD CONSTRAINT "tokens_parent_id_tokens_id_fk" FOREIGN KEY ("parent_id") REFERENCES "public"."tokens"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "tokens_parent_id_idx" ON "tokens" USING btree ("parent_id");--> statement-breakpoint
-- Tokens metal-api issued on its own before this column existed: they count as issued, so none is re-issued silently.
UPDATE "tokens" SET "bootstrap" = true WHERE "created_by" = 'metal-api' AND "subject" = 'admin' AND "description" = 'operator admin token created on first start';
