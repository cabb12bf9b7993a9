import { jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { bookkeeping } from "./columns.js";

export const partitions = pgTable("partitions", {
  id: text("id").primaryKey(),
  name: text("name").notNull().default(""),
  description: text("description").notNull().default(""),
  bootImageUrl: text("boot_image_url").notNull().default(""),
  bootKernelUrl: text("boot_kernel_url").notNull().default(""),
  bootCommandLine: text("boot_command_line").notNull().default(""),
  mgmtServiceAddress: text("mgmt_service_address").notNull().default(""),
  dnsServers: text("dns_servers").array().notNull().default([]),
  ntpServers: text("ntp_servers").array().notNull().default([]),
  labels: jsonb("labels").$type<Record<string, string>>().notNull().default({}),
  ...bookkeeping(),
});

export type PartitionRow = typeof partitions.$inferSelect;
export type NewPartitionRow = typeof partitions.$inferInsert;
