ALTER TABLE "machines" ADD COLUMN "tags" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "bmc" jsonb;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "led_state" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "led_description" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "switches" ADD COLUMN "description" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "switches" ADD COLUMN "mode" text DEFAULT 'operational' NOT NULL;--> statement-breakpoint
ALTER TABLE "switches" ADD COLUMN "console_command" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "switches" ADD COLUMN "last_sync" jsonb;--> statement-breakpoint
ALTER TABLE "switches" ADD COLUMN "last_sync_error" jsonb;