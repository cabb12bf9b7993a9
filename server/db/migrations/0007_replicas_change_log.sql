CREATE TABLE "change_cursors" (
	"name" text PRIMARY KEY NOT NULL,
	"tx" bigint NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "change_log" (
	"revision" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "change_log_revision_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"tx" bigint DEFAULT (pg_current_xact_id()::text::bigint) NOT NULL,
	"entity" text NOT NULL,
	"entity_id" text NOT NULL,
	"partition_id" text,
	"project" text,
	"previous_project" text,
	"kind" text NOT NULL,
	"payload" jsonb,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "daemon_sessions" (
	"kind" text NOT NULL,
	"partition_id" text NOT NULL,
	"daemon_id" text NOT NULL,
	"replica_id" text NOT NULL,
	"connected_at" timestamp with time zone NOT NULL,
	"last_seen" timestamp with time zone NOT NULL,
	CONSTRAINT "daemon_sessions_kind_partition_id_daemon_id_pk" PRIMARY KEY("kind","partition_id","daemon_id")
);
--> statement-breakpoint
CREATE TABLE "replicas" (
	"id" text PRIMARY KEY NOT NULL,
	"address" text NOT NULL,
	"version" text DEFAULT '' NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"heartbeat_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "daemon_sessions" ADD CONSTRAINT "daemon_sessions_replica_id_replicas_id_fk" FOREIGN KEY ("replica_id") REFERENCES "public"."replicas"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "change_log_tx_idx" ON "change_log" USING btree ("tx","revision");--> statement-breakpoint
CREATE INDEX "change_log_at_idx" ON "change_log" USING btree ("at");--> statement-breakpoint
CREATE INDEX "daemon_sessions_replica_idx" ON "daemon_sessions" USING btree ("replica_id");
--> statement-breakpoint
-- Machines: every change a client can see, in the transaction that made it. A lease renewal
-- (waiting_until moved while the machine stays waiting) is not a change; becoming or no longer
-- being waiting is. Compared as JSON minus the lease, so a column added later counts by itself.
CREATE FUNCTION "metal_log_machine_change"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  was_waiting boolean;
  is_waiting boolean;
  change_kind text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "change_log" ("entity", "entity_id", "partition_id", "project", "kind") VALUES ('machine', NEW."id", NEW."partition_id", NEW."project", 'created');
    RETURN NULL;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "change_log" ("entity", "entity_id", "partition_id", "previous_project", "kind") VALUES ('machine', OLD."id", OLD."partition_id", OLD."project", 'deleted');
    RETURN NULL;
  END IF;
  was_waiting := OLD."waiting_until" IS NOT NULL AND OLD."waiting_until" > now();
  is_waiting := NEW."waiting_until" IS NOT NULL AND NEW."waiting_until" > now();
  IF was_waiting = is_waiting AND (to_jsonb(OLD) - 'waiting_until' - 'updated_at') = (to_jsonb(NEW) - 'waiting_until' - 'updated_at') THEN
    RETURN NULL;
  END IF;
  change_kind := CASE
    WHEN OLD."allocation" IS NULL AND NEW."allocation" IS NOT NULL THEN 'allocated'
    WHEN OLD."allocation" IS NOT NULL AND NEW."allocation" IS NULL THEN 'freed'
    ELSE 'updated' END;
  INSERT INTO "change_log" ("entity", "entity_id", "partition_id", "project", "previous_project", "kind")
    VALUES ('machine', NEW."id", NEW."partition_id", NEW."project", OLD."project", change_kind);
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "machines_change_log" AFTER INSERT OR UPDATE OR DELETE ON "machines" FOR EACH ROW EXECUTE FUNCTION "metal_log_machine_change"();--> statement-breakpoint
-- Provisioning events: the events a write added (the container is newest first; ISO times compare
-- as text), or a change of the flags derived from them. Logged as the machine's, with its project.
CREATE FUNCTION "metal_log_machine_events_change"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  added jsonb;
  m record;
BEGIN
  IF TG_OP = 'INSERT' THEN
    added := NEW."events";
  ELSE
    added := jsonb_path_query_array(NEW."events", '$[*] ? (@.time > $t)', jsonb_build_object('t', coalesce(OLD."events"->0->>'time', '')));
    IF jsonb_array_length(added) = 0
      AND OLD."liveliness" = NEW."liveliness" AND OLD."crash_loop" = NEW."crash_loop" AND OLD."failed_machine_reclaim" = NEW."failed_machine_reclaim" THEN
      RETURN NULL;
    END IF;
  END IF;
  SELECT "partition_id", "project" INTO m FROM "machines" WHERE "id" = NEW."machine_id";
  INSERT INTO "change_log" ("entity", "entity_id", "partition_id", "project", "previous_project", "kind", "payload")
    VALUES ('machine', NEW."machine_id", m."partition_id", m."project", m."project", 'event', jsonb_build_object('events', added));
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "machine_events_change_log" AFTER INSERT OR UPDATE ON "machine_events" FOR EACH ROW EXECUTE FUNCTION "metal_log_machine_events_change"();--> statement-breakpoint
-- Switches: sync reports (for the event feed) and every other change.
CREATE FUNCTION "metal_log_switch_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "change_log" ("entity", "entity_id", "partition_id", "kind") VALUES ('switch', NEW."id", NEW."partition_id", 'created');
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "change_log" ("entity", "entity_id", "partition_id", "kind") VALUES ('switch', OLD."id", OLD."partition_id", 'deleted');
  ELSIF OLD."last_sync" IS DISTINCT FROM NEW."last_sync" OR OLD."last_sync_error" IS DISTINCT FROM NEW."last_sync_error" THEN
    INSERT INTO "change_log" ("entity", "entity_id", "partition_id", "kind", "payload")
      VALUES ('switch', NEW."id", NEW."partition_id", 'synced', jsonb_build_object('lastSync', NEW."last_sync", 'lastSyncError', NEW."last_sync_error"));
  ELSIF to_jsonb(OLD) - 'updated_at' IS DISTINCT FROM to_jsonb(NEW) - 'updated_at' THEN
    INSERT INTO "change_log" ("entity", "entity_id", "partition_id", "kind") VALUES ('switch', NEW."id", NEW."partition_id", 'updated');
  END IF;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "switches_change_log" AFTER INSERT OR UPDATE OR DELETE ON "switches" FOR EACH ROW EXECUTE FUNCTION "metal_log_switch_change"();
