CREATE TABLE "sign_in_proofs" (
	"digest" text PRIMARY KEY NOT NULL,
	"usable_until" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "sign_in_proofs_usable_until_idx" ON "sign_in_proofs" USING btree ("usable_until");