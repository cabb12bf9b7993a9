import { sql } from "drizzle-orm";
import { boolean, index, integer, jsonb, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";
import type { BmcState } from "../../domain/bmc-report.js";
import type { ProvisioningEvent } from "../../domain/provisioning.js";
import { bookkeeping } from "./columns.js";
import { partitions } from "./partitions.js";

/** Events as stored in JSON: times as ISO strings. */
export type StoredEvent = Omit<ProvisioningEvent, "time"> & { time: string };

/** Machines; bare records are created by the first event or BMC report of an unknown machine. */
export const machines = pgTable(
  "machines",
  {
    id: text("id").primaryKey(),
    partitionId: text("partition_id"),
    /** The matched size, "unknown" when none or several match; null before registration. */
    sizeId: text("size_id"),
    rackId: text("rack_id"),
    hardware: jsonb("hardware").$type<StoredHardware>(),
    bios: jsonb("bios").$type<{ vendor: string; version: string; date: string }>(),
    /** "available", "tainted" (reserved by an operator: not allocatable, by size or by id) or "locked" (not allocatable, cannot be freed). */
    state: text("state").$type<"available" | "tainted" | "locked">().notNull().default("available"),
    stateReason: text("state_reason").notNull().default(""),
    /**
     * A lease, renewed by the open Wait stream: the machine is waiting while it
     * lies in the future. A server that dies leaves no stale flag behind for long.
     */
    waitingUntil: timestamp("waiting_until", { withTimezone: true, mode: "date" }),
    allocation: jsonb("allocation").$type<StoredAllocation>(),
    /** The allocation's project, as a column for quotas, filters and rack spreading. */
    project: text("project"),
    /** Tags of the allocation (user tags and placement tags); empty while free. */
    tags: jsonb("tags").$type<string[]>().notNull().default([]),
    /** What the partition's metal-bmc last reported about the machine's BMC; null before the first report. */
    bmc: jsonb("bmc").$type<StoredBmc>(),
    /** The identify LED as last commanded: "" (never), "on" or "off". */
    ledState: text("led_state").$type<"" | "on" | "off">().notNull().default(""),
    ledDescription: text("led_description").notNull().default(""),
    /**
     * The generation of the machine's credentials (server/auth/machine-credential.ts): a
     * credential names the generation it was issued in and is void once this moves on, which a
     * successful installation does. Not a change a client sees (the change-log trigger ignores it).
     */
    credentialGeneration: integer("credential_generation").notNull().default(0),
    ...bookkeeping(),
  },
  (t) => [
    index("machines_candidates_idx").on(t.partitionId, t.sizeId),
    index("machines_project_idx").on(t.project),
    // Commands are not dispatched for a BMC address two records of a partition claim: that check joins on it.
    index("machines_bmc_address_idx").on(t.partitionId, sql`(${t.bmc}->>'address')`),
    // The boot path finds a machine by the MAC of the NIC it PXE-boots from: hardware->'nics' @> '[{"mac": ...}]'.
    index("machines_nic_macs_idx").using("gin", sql`(${t.hardware}->'nics') jsonb_path_ops`),
  ],
);

/** What a tenant's allocation of a machine consists of. */
export interface StoredAllocation {
  uuid: string;
  project: string;
  name: string;
  description: string;
  hostname: string;
  role: "machine" | "firewall";
  image: string;
  filesystemLayout: string;
  sshKeys: string[];
  userData: string;
  asn: number;
  networks: { network: string; ips: string[]; vrf: number; primary: boolean }[];
  createdAt: string;
  createdBy: string;
  /** Set by InstallationSucceeded. */
  consolePassword?: string;
  bootInfo?: { imageId: string; primaryDisk: string; osPartition: string; initrd: string; cmdline: string; kernel: string; bootloaderId: string };
  succeeded?: boolean;
  /** Set by Reinstall until the hammer reports success or aborts. */
  reinstall?: boolean;
  /** The image installed before a reinstall, restored by AbortReinstall. */
  previousImage?: string;
  /** Partition defaults unless the request named others. */
  dnsServers?: string[];
  ntpServers?: string[];
}

/** A machine's BMC as metal-bmc sees it; user and password never reach tenants. */
export type StoredBmc = BmcState;

/** The hardware inventory as registered by metal-hammer. */
export interface StoredHardware {
  memoryBytes: number;
  cpus: { vendor: string; model: string; cores: number; threads: number }[];
  disks: { name: string; sizeBytes: number }[];
  nics: { name: string; mac: string; neighbors: { hostname: string; port: string }[] }[];
  gpus: { vendor: string; model: string }[];
}

/** Leaf switches, as registered by their metal-core. */
export const switches = pgTable("switches", {
  id: text("id").primaryKey(),
  partitionId: text("partition_id")
    .notNull()
    .references(() => partitions.id, { onDelete: "restrict" }),
  rackId: text("rack_id").notNull(),
  osVendor: text("os_vendor").notNull().default(""),
  osVersion: text("os_version").notNull().default(""),
  managementIp: text("management_ip").notNull().default(""),
  nics: jsonb("nics").$type<StoredSwitchNic[]>().notNull(),
  description: text("description").notNull().default(""),
  /** "operational", or "replace" while a broken switch is swapped for a new one of the same name. */
  mode: text("mode").$type<"operational" | "replace">().notNull().default("operational"),
  consoleCommand: text("console_command").notNull().default(""),
  /** host:port where the switch's metal-core serves metal-hammer on its machines; "" when it serves none. */
  machineEndpoint: text("machine_endpoint").notNull().default(""),
  /** The last sync metal-core reported, and the last one that failed. */
  lastSync: jsonb("last_sync").$type<StoredSwitchSync>(),
  lastSyncError: jsonb("last_sync_error").$type<StoredSwitchSync>(),
  ...bookkeeping(),
});

/** A front port; `desired` is an operator's port toggle not yet confirmed by metal-core. */
export interface StoredSwitchNic {
  name: string;
  identifier: string;
  desired?: "up" | "down";
  actual?: "up" | "down" | "unknown";
}

export interface StoredSwitchSync {
  time: string;
  durationMs: number;
  error: string;
  generation?: number;
}

/** Which machine NIC is cabled to which switch port; a port serves at most one machine. */
export const machineConnections = pgTable(
  "machine_connections",
  {
    switchId: text("switch_id")
      .notNull()
      .references(() => switches.id, { onDelete: "cascade" }),
    switchPort: text("switch_port").notNull(),
    machineId: text("machine_id")
      .notNull()
      .references(() => machines.id, { onDelete: "cascade" }),
    machineNic: text("machine_nic").notNull(),
    /** The VRF the port is in: null is the PXE/discovery VLAN, "default" for firewalls, "vrf<N>" for tenants. */
    vrf: text("vrf"),
  },
  (t) => [primaryKey({ columns: [t.switchId, t.switchPort] }), index("machine_connections_machine_idx").on(t.machineId)],
);

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

/**
 * BMC commands are durable rows: the partition's metal-bmc receives each
 * until it acknowledges it, executes it once per id, and the server times out
 * what is not done by the deadline.
 */
export const bmcCommands = pgTable(
  "bmc_commands",
  {
    id: text("id").primaryKey(),
    machineId: text("machine_id")
      .notNull()
      .references(() => machines.id, { onDelete: "cascade" }),
    partitionId: text("partition_id").notNull(),
    command: text("command").notNull(),
    status: text("status").$type<"pending" | "done" | "failed" | "timed_out">().notNull().default("pending"),
    result: text("result").notNull().default(""),
    deadline: timestamp("deadline", { withTimezone: true, mode: "date" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [index("bmc_commands_pending_idx").on(t.partitionId, t.status)],
);

export type BmcCommandRow = typeof bmcCommands.$inferSelect;
export type MachineRow = typeof machines.$inferSelect;
export type MachineEventsRow = typeof machineEvents.$inferSelect;
export type SwitchRow = typeof switches.$inferSelect;
export type NewSwitchRow = typeof switches.$inferInsert;
