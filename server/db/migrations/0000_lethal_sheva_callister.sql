CREATE TABLE "partitions" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text DEFAULT '' NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"boot_image_url" text DEFAULT '' NOT NULL,
	"boot_kernel_url" text DEFAULT '' NOT NULL,
	"boot_command_line" text DEFAULT '' NOT NULL,
	"mgmt_service_address" text DEFAULT '' NOT NULL,
	"dns_servers" text[] DEFAULT '{}' NOT NULL,
	"ntp_servers" text[] DEFAULT '{}' NOT NULL,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
