-- Images of one OS must not repeat a version written differently ("19.04.1" and "19.4.1").
-- Existing rows get the key computed here (leading zeros of each number dropped), the app writes it from then on.
ALTER TABLE "images" ADD COLUMN "version_key" text;--> statement-breakpoint
UPDATE "images" SET "version_key" = regexp_replace("os_version", '(^|\.)0+([0-9])', '\1\2', 'g');--> statement-breakpoint
ALTER TABLE "images" ALTER COLUMN "version_key" SET NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "images_os_version_key" ON "images" USING btree ("os","version_key");
