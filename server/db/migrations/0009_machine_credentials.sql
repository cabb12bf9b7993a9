ALTER TABLE "machines" ADD COLUMN "credential_generation" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "switches" ADD COLUMN "machine_endpoint" text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX "machines_nic_macs_idx" ON "machines" USING gin (("hardware"->'nics') jsonb_path_ops);