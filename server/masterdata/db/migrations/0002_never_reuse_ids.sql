CREATE TABLE "used_ids" (
	"kind" text NOT NULL,
	"id" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp (3) with time zone,
	CONSTRAINT "used_ids_pkey" PRIMARY KEY("kind","id")
);
--> statement-breakpoint
-- Every tenant and project id used so far, alive or deleted: the history has them all.
INSERT INTO "used_ids" ("kind", "id", "created_at", "deleted_at")
SELECT h."kind", h."entity_id", min(h."at"),
       CASE WHEN bool_or(h."op" = 'delete') AND NOT EXISTS (
              SELECT 1 FROM "tenants" t WHERE h."kind" = 'Tenant' AND t."id" = h."entity_id"
              UNION ALL SELECT 1 FROM "projects" p WHERE h."kind" = 'Project' AND p."id" = h."entity_id")
            THEN max(h."at") END
FROM "history" h
WHERE h."kind" IN ('Tenant', 'Project')
GROUP BY h."kind", h."entity_id"
ON CONFLICT DO NOTHING;--> statement-breakpoint
INSERT INTO "used_ids" ("kind", "id", "created_at") SELECT 'Tenant', "id", "created_at" FROM "tenants" ON CONFLICT DO NOTHING;--> statement-breakpoint
INSERT INTO "used_ids" ("kind", "id", "created_at") SELECT 'Project', "id", "created_at" FROM "projects" ON CONFLICT DO NOTHING;
