import { and, eq, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { machineConnections, machines, switches } from "../db/schema/index.js";

/** At most this many metal-cores are named for a machine whose leaves are not known yet. */
const MAX_UNCABLED_ENDPOINTS = 16;

/** What machine credentials are checked against, and how the boot path finds a machine. */
export const machineCredentialRepository = {
  /**
   * The machine's partition and credential generation, and whether its registered hardware has a NIC
   * of `mac` (lower case; false when not registered or no MAC is given); undefined when there is no such machine.
   */
  async stateOf(db: DbHandle, id: string, mac = ""): Promise<{ partition: string | null; generation: number; registered: boolean; hasMac: boolean } | undefined> {
    const [row] = await db
      .select({
        partition: machines.partitionId,
        generation: machines.credentialGeneration,
        registered: sql<boolean>`${machines.hardware} is not null`,
        hasMac: mac === "" ? sql<boolean>`false` : sql<boolean>`coalesce((${machines.hardware}->'nics') @> ${JSON.stringify([{ mac }])}::jsonb, false)`,
      })
      .from(machines)
      .where(eq(machines.id, id));
    return row;
  },

  /**
   * The machine endpoints of the metal-cores on the machine's leaves; for a
   * machine not cabled yet, those of the partition's switches (a bounded
   * number, in name order): the hammer tries them in turn.
   */
  async coreEndpoints(db: DbHandle, partition: string, machineId: string | undefined): Promise<string[]> {
    if (machineId) {
      const leaves = await db
        .selectDistinct({ id: switches.id, endpoint: switches.machineEndpoint })
        .from(machineConnections)
        .innerJoin(switches, eq(switches.id, machineConnections.switchId))
        .where(and(eq(machineConnections.machineId, machineId), sql`${switches.machineEndpoint} <> ''`))
        .orderBy(switches.id);
      if (leaves.length > 0) return leaves.map((l) => l.endpoint);
    }
    const all = await db
      .select({ endpoint: switches.machineEndpoint })
      .from(switches)
      .where(and(eq(switches.partitionId, partition), sql`${switches.machineEndpoint} <> ''`))
      .orderBy(switches.id)
      .limit(MAX_UNCABLED_ENDPOINTS);
    return all.map((s) => s.endpoint);
  },

  /** The registered machine of `partition` with a NIC of this MAC (lower case), or undefined. */
  async findByMac(db: DbHandle, partition: string, mac: string): Promise<{ id: string; generation: number } | undefined> {
    const [row] = await db
      .select({ id: machines.id, generation: machines.credentialGeneration })
      .from(machines)
      .where(and(eq(machines.partitionId, partition), sql`(${machines.hardware}->'nics') @> ${JSON.stringify([{ mac }])}::jsonb`))
      .limit(1);
    return row;
  },

  /** Voids every credential of the machine issued so far (in the caller's transaction). */
  async nextGeneration(tx: DbHandle, id: string): Promise<void> {
    await tx
      .update(machines)
      .set({ credentialGeneration: sql`${machines.credentialGeneration} + 1` })
      .where(eq(machines.id, id));
  },
};
