import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { machineConnections, machines, networks, partitions, prefixes, type StoredAllocation, type StoredSwitchNic, switches } from "../../server/db/schema/index.js";
import { type SyncReport, switchSessionRepository as sessions } from "../../server/repositories/switch-repository.js";
import { createSwitchConfigReader } from "../../server/sessions/switch/config-reader.js";
import { createSwitchSyncWriter } from "../../server/sessions/switch/sync-writer.js";
import { eventually } from "../helpers/eventually.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
let url: string;
const machine = randomUUID();
const SWITCHES = Array.from({ length: 30 }, (_, i) => `leaf${String(i).padStart(2, "0")}`);
const nics = (...names: string[]): StoredSwitchNic[] => names.map((name) => ({ name, identifier: name }));
const nicsOf = async (id: string) => (await db.select({ nics: switches.nics }).from(switches).where(eq(switches.id, id)))[0]!.nics;
const rowOf = async (id: string) => (await db.select().from(switches).where(eq(switches.id, id)))[0]!;
const report = (generation: number, ports: Record<string, "up" | "down" | "unknown"> = {}, error = ""): SyncReport => ({
  sync: { time: new Date().toISOString(), durationMs: 1, error, generation },
  failed: error !== "",
  ports: new Map(Object.entries(ports)),
});

beforeAll(async () => {
  ({ db, url } = await useMetalDatabase({ poolSize: 8 }));
  await db.insert(partitions).values({ id: "p1" });
  await db.insert(networks).values({ id: "tenant1", kind: 3, partitionId: "p1", vrf: 7 });
  await db.insert(prefixes).values({ prefix: "10.7.0.0/24", networkId: "tenant1", family: 4, scope: "0.0.0.0/0" });
  const allocation = { role: "machine", networks: [{ network: "tenant1", ips: ["10.7.0.5"], vrf: 7, primary: true }] } as unknown as StoredAllocation;
  await db.insert(machines).values({ id: machine, partitionId: "p1", allocation });
  // Each switch a port count of its own, so that a mix-up between them shows.
  await db.insert(switches).values(SWITCHES.map((id, i) => ({ id, partitionId: "p1", rackId: "r1", nics: nics(...Array.from({ length: 1 + (i % 5) }, (_, n) => `swp${n + 1}`)) })));
  await db.insert(machineConnections).values({ switchId: "leaf03", switchPort: "swp2", machineId: machine, machineNic: "eth0", vrf: "vrf7" });
});

describe("batched config inputs", () => {
  it("reads many switches in one batch, each with its own ports, cabling, allocations and networks", async () => {
    const inputs = await sessions.configInputs(db, [...SWITCHES, "gone", "leaf03"]);
    expect([...inputs.keys()].sort()).toEqual(SWITCHES);
    for (const [i, id] of SWITCHES.entries()) {
      const input = inputs.get(id)!;
      expect(input.switchId).toBe(id);
      expect(input.generation).toBe((await rowOf(id)).version);
      expect(input.nics.map((n) => n.name)).toHaveLength(1 + (i % 5));
      if (id === "leaf03") continue;
      expect(input.connections).toEqual([]);
      expect(input.networks.size).toBe(0);
    }
    const cabled = inputs.get("leaf03")!;
    expect(cabled.connections).toEqual([{ port: "swp2", machineId: machine, vrf: "vrf7" }]);
    expect(cabled.allocations.get(machine)).toEqual({ role: "machine", networks: [{ network: "tenant1", ips: ["10.7.0.5"], vrf: 7, primary: true }] });
    expect(cabled.networks).toEqual(new Map([["tenant1", { kind: 3, prefixes: ["10.7.0.0/24"] }]]));
    expect(await sessions.configInput(db, "gone")).toBeUndefined();
  });

  it("serves concurrent sessions' reads together, each with its own answer", async () => {
    const read = createSwitchConfigReader(db);
    const got = await Promise.all([...SWITCHES, "gone"].map(read));
    expect(got.map((g) => g?.switchId)).toEqual([...SWITCHES, undefined]);
  });
});

describe("batched sync reports", () => {
  it("stamps the sync of many switches at once, the failed ones also as their last error", async () => {
    const write = createSwitchSyncWriter(db);
    const stored = await Promise.all([...SWITCHES, "gone"].map((id, i) => write(id, report(100 + i, {}, i % 2 === 1 ? "reload failed" : ""))));
    expect(stored).toEqual([...SWITCHES.map(() => true), false]);
    for (const [i, id] of SWITCHES.entries()) {
      const row = await rowOf(id);
      expect(row.lastSync?.generation).toBe(100 + i);
      if (i % 2 === 1) expect(row.lastSyncError?.generation).toBe(100 + i);
      else expect(row.lastSyncError?.generation).not.toBe(100 + i);
    }
  });

  it("keeps the order of one switch's reports given together, and keeps the version", async () => {
    const version = (await rowOf("leaf00")).version;
    const stamped = await sessions.stampSyncs(db, [
      { id: "leaf00", report: report(1, {}, "first") },
      { id: "leaf01", report: report(2) },
      { id: "leaf00", report: report(3) },
    ]);
    expect(stamped).toEqual(["stamped", "stamped", "stamped"]);
    const row = await rowOf("leaf00");
    expect(row.lastSync?.generation).toBe(3);
    expect(row.lastSyncError?.generation).toBe(1);
    expect(row.version).toBe(version);
  });

  it("merges a report that changes port states with an operator's toggle written while it waited for the row", async () => {
    await db
      .update(switches)
      .set({
        nics: [
          { name: "swp1", identifier: "swp1", actual: "up" },
          { name: "swp2", identifier: "swp2", actual: "up" },
        ],
      })
      .where(eq(switches.id, "leaf04"));
    const operator = new pg.Client({ connectionString: url });
    await operator.connect();
    try {
      await operator.query("begin");
      await operator.query("select 1 from switches where id = 'leaf04' for update");
      // Reports of other switches come along in the same batch; only this one needs the lock.
      const write = createSwitchSyncWriter(db);
      const pending = Promise.all([write("leaf04", report(9, { swp1: "down" })), write("leaf05", report(9)), write("leaf06", report(9))]);
      await eventually("the report to wait for the row lock", async () => {
        const waiting = await operator.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()");
        return waiting.rows[0].n > 0;
      });
      await operator.query(`update switches set nics = jsonb_set(nics, '{1,desired}', '"down"') where id = 'leaf04'`);
      await operator.query("commit");
      expect(await pending).toEqual([true, true, true]);
    } finally {
      await operator.end();
    }
    expect(await nicsOf("leaf04")).toEqual([
      { name: "swp1", identifier: "swp1", actual: "down" },
      { name: "swp2", identifier: "swp2", actual: "up", desired: "down" },
    ]);
    expect((await rowOf("leaf04")).lastSync?.generation).toBe(9);
    expect((await rowOf("leaf05")).lastSync?.generation).toBe(9);
  });
});
