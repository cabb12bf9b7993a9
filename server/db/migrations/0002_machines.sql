CREATE TABLE "bmc_commands" (
	"id" text PRIMARY KEY NOT NULL,
	"machine_id" text NOT NULL,
	"partition_id" text NOT NULL,
	"command" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"result" text DEFAULT '' NOT NULL,
	"deadline" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "machine_connections" (
	"switch_id" text NOT NULL,
	"switch_port" text NOT NULL,
	"machine_id" text NOT NULL,
	"machine_nic" text NOT NULL,
	"vrf" text,
	CONSTRAINT "machine_connections_switch_id_switch_port_pk" PRIMARY KEY("switch_id","switch_port")
);
--> statement-breakpoint
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
	"size_id" text,
	"rack_id" text,
	"hardware" jsonb,
	"bios" jsonb,
	"state" text DEFAULT 'available' NOT NULL,
	"state_reason" text DEFAULT '' NOT NULL,
	"waiting_until" timestamp with time zone,
	"allocation" jsonb,
	"project" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "switches" (
	"id" text PRIMARY KEY NOT NULL,
	"partition_id" text NOT NULL,
	"rack_id" text NOT NULL,
	"os_vendor" text DEFAULT '' NOT NULL,
	"os_version" text DEFAULT '' NOT NULL,
	"management_ip" text DEFAULT '' NOT NULL,
	"nics" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
--> statement-breakpoint
ALTER TABLE "images" ADD COLUMN "version_key" text NOT NULL;--> statement-breakpoint
ALTER TABLE "bmc_commands" ADD CONSTRAINT "bmc_commands_machine_id_machines_id_fk" FOREIGN KEY ("machine_id") REFERENCES "public"."machines"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "machine_connections" ADD CONSTRAINT "machine_connections_switch_id_switches_id_fk" FOREIGN KEY ("switch_id") REFERENCES "public"."switches"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "machine_connections" ADD CONSTRAINT "machine_connections_machine_id_machines_id_fk" FOREIGN KEY ("machine_id") REFERENCES "public"."machines"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "machine_events" ADD CONSTRAINT "machine_events_machine_id_machines_id_fk" FOREIGN KEY ("machine_id") REFERENCES "public"."machines"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "switches" ADD CONSTRAINT "switches_partition_id_partitions_id_fk" FOREIGN KEY ("partition_id") REFERENCES "public"."partitions"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "bmc_commands_pending_idx" ON "bmc_commands" USING btree ("partition_id","status");--> statement-breakpoint
CREATE INDEX "machine_connections_machine_idx" ON "machine_connections" USING btree ("machine_id");--> statement-breakpoint
CREATE INDEX "machines_candidates_idx" ON "machines" USING btree ("partition_id","size_id");--> statement-breakpoint
CREATE INDEX "machines_project_idx" ON "machines" USING btree ("project");--> statement-breakpoint
CREATE UNIQUE INDEX "images_os_version_key" ON "images" USING btree ("os","version_key");