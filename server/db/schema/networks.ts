import { bigint, boolean, cidr, index, inet, integer, jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { bookkeeping } from "./columns.js";

/**
 * Networks of every kind. Their address space lives in `prefixes`, one row per
 * prefix, so that PostgreSQL itself refuses overlaps (an exclusion constraint
 * added by a hand-written migration, see 0001_prefix_exclusion.sql).
 */
export const networks = pgTable(
  "networks",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull().default(""),
    description: text("description").notNull().default(""),
    kind: integer("kind").notNull(),
    partitionId: text("partition_id"),
    project: text("project"),
    parentNetworkId: text("parent_network_id").references((): any => networks.id, { onDelete: "restrict" }),
    vrf: integer("vrf"),
    defaultChildLengthV4: integer("default_child_length_v4"),
    defaultChildLengthV6: integer("default_child_length_v6"),
    nat: boolean("nat").notNull().default(false),
    destinationPrefixes: text("destination_prefixes").array().notNull().default([]),
    labels: jsonb("labels").$type<Record<string, string>>().notNull().default({}),
    ...bookkeeping(),
  },
  (t) => [index("networks_project_idx").on(t.project), index("networks_parent_idx").on(t.parentNetworkId), index("networks_partition_idx").on(t.partitionId)],
);

export const prefixes = pgTable(
  "prefixes",
  {
    prefix: cidr("prefix").primaryKey(),
    networkId: text("network_id")
      .notNull()
      .references(() => networks.id, { onDelete: "cascade" }),
    family: integer("family").notNull(),
    /** The prefix this one was carved from, or the family's whole space for top-level prefixes. */
    scope: cidr("scope").notNull(),
  },
  (t) => [index("prefixes_network_idx").on(t.networkId)],
);

export const ips = pgTable(
  "ips",
  {
    id: text("id").primaryKey(),
    // Unique across everything: prefixes never overlap, so an address lives in at most one.
    ip: inet("ip").notNull().unique("ips_ip_key"),
    prefix: cidr("prefix")
      .notNull()
      .references(() => prefixes.prefix, { onDelete: "restrict" }),
    networkId: text("network_id").notNull(),
    project: text("project").notNull(),
    name: text("name").notNull().default(""),
    description: text("description").notNull().default(""),
    type: integer("type").notNull(),
    machineId: text("machine_id"),
    labels: jsonb("labels").$type<Record<string, string>>().notNull().default({}),
    ...bookkeeping(),
  },
  (t) => [index("ips_project_idx").on(t.project), index("ips_network_idx").on(t.networkId)],
);

/** Allocated VRF ids (1..131072; each doubles as the VXLAN VNI). The key makes a double allocation impossible. */
export const vrfs = pgTable("vrfs", {
  vrf: integer("vrf").primaryKey(),
  owner: text("owner").notNull(),
});

/** Allocated private ASNs (4210000000 + n, n in 1..131072), one per machine allocation. */
export const asns = pgTable("asns", {
  asn: bigint("asn", { mode: "number" }).primaryKey(),
  owner: text("owner").notNull(),
});

export type NetworkRow = typeof networks.$inferSelect;
export type NewNetworkRow = typeof networks.$inferInsert;
export type PrefixRow = typeof prefixes.$inferSelect;
export type IpRow = typeof ips.$inferSelect;
export type NewIpRow = typeof ips.$inferInsert;
