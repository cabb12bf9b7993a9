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
--> statement-breakpoint
CREATE TABLE "signing_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"algorithm" text NOT NULL,
	"private_jwk" jsonb NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"roles" jsonb NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "size_reservations" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text DEFAULT '' NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"size_id" text NOT NULL,
	"project" text NOT NULL,
	"partition_ids" text[] NOT NULL,
	"amount" integer NOT NULL,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sizes" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text DEFAULT '' NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"constraints" jsonb NOT NULL,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "filesystem_layouts" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text DEFAULT '' NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"spec" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "images" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text DEFAULT '' NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"url" text NOT NULL,
	"features" integer[] NOT NULL,
	"os" text NOT NULL,
	"os_version" text NOT NULL,
	"classification" integer NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "size_image_constraints" (
	"id" text PRIMARY KEY NOT NULL,
	"images" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "asns" (
	"asn" bigint PRIMARY KEY NOT NULL,
	"owner" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ips" (
	"id" text PRIMARY KEY NOT NULL,
	"ip" "inet" NOT NULL,
	"prefix" "cidr" NOT NULL,
	"network_id" text NOT NULL,
	"project" text NOT NULL,
	"name" text DEFAULT '' NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"type" integer NOT NULL,
	"machine_id" text,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL,
	CONSTRAINT "ips_ip_key" UNIQUE("ip")
);
--> statement-breakpoint
CREATE TABLE "networks" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text DEFAULT '' NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"kind" integer NOT NULL,
	"partition_id" text,
	"project" text,
	"parent_network_id" text,
	"vrf" integer,
	"default_child_length_v4" integer,
	"default_child_length_v6" integer,
	"nat" boolean DEFAULT false NOT NULL,
	"destination_prefixes" text[] DEFAULT '{}' NOT NULL,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "prefixes" (
	"prefix" "cidr" PRIMARY KEY NOT NULL,
	"network_id" text NOT NULL,
	"family" integer NOT NULL,
	"scope" "cidr" NOT NULL
);
--> statement-breakpoint
CREATE TABLE "vrfs" (
	"vrf" integer PRIMARY KEY NOT NULL,
	"owner" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "size_reservations" ADD CONSTRAINT "size_reservations_size_id_sizes_id_fk" FOREIGN KEY ("size_id") REFERENCES "public"."sizes"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ips" ADD CONSTRAINT "ips_prefix_prefixes_prefix_fk" FOREIGN KEY ("prefix") REFERENCES "public"."prefixes"("prefix") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "networks" ADD CONSTRAINT "networks_parent_network_id_networks_id_fk" FOREIGN KEY ("parent_network_id") REFERENCES "public"."networks"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "prefixes" ADD CONSTRAINT "prefixes_network_id_networks_id_fk" FOREIGN KEY ("network_id") REFERENCES "public"."networks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "size_reservations_project_idx" ON "size_reservations" USING btree ("project");--> statement-breakpoint
CREATE INDEX "size_reservations_size_idx" ON "size_reservations" USING btree ("size_id");--> statement-breakpoint
CREATE INDEX "images_os_idx" ON "images" USING btree ("os");--> statement-breakpoint
CREATE INDEX "ips_project_idx" ON "ips" USING btree ("project");--> statement-breakpoint
CREATE INDEX "ips_network_idx" ON "ips" USING btree ("network_id");--> statement-breakpoint
CREATE INDEX "networks_project_idx" ON "networks" USING btree ("project");--> statement-breakpoint
CREATE INDEX "networks_parent_idx" ON "networks" USING btree ("parent_network_id");--> statement-breakpoint
CREATE INDEX "networks_partition_idx" ON "networks" USING btree ("partition_id");--> statement-breakpoint
CREATE INDEX "prefixes_network_idx" ON "prefixes" USING btree ("network_id");