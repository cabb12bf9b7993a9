import { boolean, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import type { ProvisioningEvent } from "../../domain/provisioning.js";
import { bookkeeping } from "./columns.js";

/** Events as stored in JSON: times as ISO strings. */
export type StoredEvent = Omit<ProvisioningEvent, "time"> & { time: string };

/** Machines; bare records are created by the first event or BMC report of an unknown machine. */
export const machines = pgTable("machines", {
  id: text("id").primaryKey(),
  partitionId: text("partition_id"),
  ...bookkeeping(),
});

/** One event container per machine: its provisioning history and the flags derived from it. */
export const machineEvents = pgTable("machine_events", {
  machineId: text("machine_id")
    .primaryKey()
    .references(() => machines.id, { onDelete: "cascade" }),
  liveliness: text("liveliness").$type<"Alive" | "Dead" | "Unknown">().notNull(),
  events: jsonb("events").$type<StoredEvent[]>().notNull(),
  lastEventTime: timestamp("last_event_time", { withTimezone: true, mode: "date" }),
  lastErrorEvent: jsonb("last_error_event").$type<StoredEvent>(),
  crashLoop: boolean("crash_loop").notNull().default(false),
  failedMachineReclaim: boolean("failed_machine_reclaim").notNull().default(false),
});

export type MachineRow = typeof machines.$inferSelect;
export type MachineEventsRow = typeof machineEvents.$inferSelect;
