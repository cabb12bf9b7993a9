CREATE TABLE "machine_events" (
	"machine_id" text PRIMARY KEY NOT NULL,
	"liveliness" text NOT NULL,
	"events" jsonb NOT NULL,
	"last_event_time" timestamp with time zone,
	"last_error_event" jsonb,
	"crash_loop" boolean DEFAULT false NOT NULL,
	"failed_machine_reclaim" boolean DEFAULT false NOT NULL
);
--> statement-breakpoint
CREATE TABLE "machines" (
	"id" text PRIMARY KEY NOT NULL,
	"partition_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
--> statement-breakpoint
ALTER TABLE "machine_events" ADD CONSTRAINT "machine_events_machine_id_machines_id_fk" FOREIGN KEY ("machine_id") REFERENCES "public"."machines"("id") ON DELETE cascade ON UPDATE no action;