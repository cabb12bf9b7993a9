-- No two prefixes of the same scope may overlap: top-level prefixes (scope = the
-- whole address space of their family) among each other, child prefixes within
-- their parent. PostgreSQL enforces it for every writer on every replica.
ALTER TABLE "prefixes" ADD CONSTRAINT "prefixes_no_overlap" EXCLUDE USING gist ("scope" inet_ops WITH =, "prefix" inet_ops WITH &&);
--> statement-breakpoint
ALTER TABLE "vrfs" ADD CONSTRAINT "vrfs_range" CHECK ("vrf" BETWEEN 1 AND 131072);
--> statement-breakpoint
ALTER TABLE "asns" ADD CONSTRAINT "asns_range" CHECK ("asn" BETWEEN 4210000001 AND 4210131072);
