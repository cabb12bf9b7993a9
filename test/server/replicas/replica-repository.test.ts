import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import type { DbHandle } from "../../../server/db/handle.js";
import { daemonSessions } from "../../../server/db/schema/index.js";
import { replicaRepository as replicas, sessionKey, daemonSessionRepository as sessionRows } from "../../../server/repositories/replica-repository.js";
import { ConnectionRegistry } from "../../../server/sessions/connections.js";
import { eventually } from "../../helpers/eventually.js";
import { useMetalDatabase } from "../../helpers/metal-db.js";

let db: DbHandle;
let url: string;

const identity = (id: string) => ({ id, address: `${id}.internal:8080`, version: "test", startedAt: new Date() });
const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms);
const failOnError = (err: unknown) => {
  throw err;
};

const rowsOf = (replica?: string) =>
  db
    .select({ kind: daemonSessions.kind, daemonId: daemonSessions.daemonId, replica: daemonSessions.replicaId, connectedAt: daemonSessions.connectedAt, lastSeen: daemonSessions.lastSeen })
    .from(daemonSessions)
    .where(replica === undefined ? undefined : sql`${daemonSessions.replicaId} = ${replica}`)
    .orderBy(daemonSessions.kind, daemonSessions.daemonId);

async function clear(): Promise<void> {
  await db.execute(sql`delete from replicas`);
}

beforeAll(async () => {
  ({ db, url } = await useMetalDatabase({ poolSize: 10 }));
});

describe("replica rows", () => {
  it("reaps only replicas past the timeout, never itself, and their sessions' rows with them", async () => {
    await clear();
    for (const id of ["r1", "r2", "r3"]) await replicas.register(db, identity(id));
    await sessionRows.hold(db, "r1", [{ kind: "switch", partition: "p1", daemonId: "leaf01", connectedAt: at(0), lastSeen: at(0) }]);
    await sessionRows.hold(db, "r2", [{ kind: "bmc", partition: "p1", daemonId: "bmc-1", connectedAt: at(0), lastSeen: at(0) }]);
    await db.execute(sql`update replicas set heartbeat_at = now() - interval '1 minute' where id in ('r1', 'r3')`);

    expect((await replicas.listLive(db, 30_000)).map((r) => r.id)).toEqual(["r2"]);
    // r3 is past the timeout too, but never reaps itself.
    expect(await replicas.reap(db, 30_000, "r3")).toEqual(["r1"]);
    expect((await rowsOf()).map((r) => r.daemonId)).toEqual(["bmc-1"]);
    // Its own heartbeat brings r3 back; a reaped replica's heartbeat says it is gone.
    expect(await replicas.heartbeat(db, "r3")).toBe(true);
    expect(await replicas.heartbeat(db, "r1")).toBe(false);
    expect((await replicas.listLive(db, 30_000)).map((r) => [r.id, r.address])).toEqual([
      ["r2", "r2.internal:8080"],
      ["r3", "r3.internal:8080"],
    ]);
  });

  it("replicas reaping at once neither fail nor reap a replica twice", async () => {
    await clear();
    const dead = Array.from({ length: 20 }, (_, i) => `dead-${String(i).padStart(2, "0")}`);
    const live = ["live-a", "live-b", "live-c", "live-d", "live-e", "live-f"];
    for (const id of [...dead, ...live]) {
      await replicas.register(db, identity(id));
      await sessionRows.hold(
        db,
        id,
        Array.from({ length: 5 }, (_, i) => ({ kind: "bmc" as const, partition: "p1", daemonId: `${id}-agent-${i}`, connectedAt: at(i), lastSeen: at(i) })),
      );
    }
    await db.execute(sql`update replicas set heartbeat_at = now() - interval '1 hour' where id like 'dead-%'`);
    // Every live replica reaps at the same moment, on connections of their own.
    const reaped = await Promise.all(live.map((self) => replicas.reap(db, 30_000, self)));
    expect(reaped.flat().sort()).toEqual(dead);
    expect((await replicas.listLive(db, 30_000)).map((r) => r.id)).toEqual(live);
    expect(new Set((await rowsOf()).map((r) => r.replica))).toEqual(new Set(live));
    expect(await rowsOf()).toHaveLength(live.length * 5);
  });
});

describe("daemon session rows", () => {
  it("a heartbeat stamps many sessions' last_seen in one statement per thousand", async () => {
    await clear();
    let statements = 0;
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    try {
      const counted = drizzle({ client: pool, logger: { logQuery: () => void statements++ } }) as unknown as DbHandle;
      await replicas.register(db, identity("r1"));
      const registry = new ConnectionRegistry("r1", { db: counted, onError: failOnError });
      const handles = Array.from({ length: 1_200 }, (_, i) => registry.register("switch", `leaf${String(i).padStart(4, "0")}`, "p1", at(i)));
      await eventually("every session's row", async () => (await rowsOf("r1")).length === 1_200);
      const heard = at(10_000);
      for (const h of handles) h.touch(heard);
      // Messages are not written one by one: nothing changed in the table yet.
      expect((await rowsOf("r1")).filter((r) => r.lastSeen.getTime() === heard.getTime())).toHaveLength(0);

      const before = statements;
      await registry.sync();
      expect(statements - before).toBe(2);
      const rows = await rowsOf("r1");
      expect(rows).toHaveLength(1_200);
      expect(rows.every((r) => r.lastSeen.getTime() === heard.getTime())).toBe(true);
      // Each row keeps its own connection time.
      expect(rows[7]!.connectedAt).toEqual(at(7));
      registry.closeAll();
    } finally {
      await pool.end();
    }
  });

  it("a reconnect to another replica takes the row over; the old replica's late write and close leave it, and its heartbeat ends the old stream", async () => {
    await clear();
    await replicas.register(db, identity("r1"));
    await replicas.register(db, identity("r2"));
    const one = new ConnectionRegistry("r1", { db, onError: failOnError });
    const two = new ConnectionRegistry("r2", { db, onError: failOnError });
    const old = one.register("bmc", "bmc-1", "p1", at(1_000));
    await eventually("r1's row", async () => (await rowsOf("r1")).length === 1);
    const fresh = two.register("bmc", "bmc-1", "p1", at(2_000));
    await eventually("r2's row", async () => (await rowsOf("r2")).length === 1);

    // r1's write of the older connection, arriving late, does not take the row back.
    const held = await sessionRows.hold(db, "r1", [{ kind: "bmc", partition: "p1", daemonId: "bmc-1", connectedAt: at(1_000), lastSeen: at(3_000) }]);
    expect(held.size).toBe(0);
    // r1's heartbeat ends its stream (the daemon is on r2 now) and its close leaves r2's row.
    await one.sync();
    expect(old.signal.aborted).toBe(true);
    expect((old.signal.reason as Error).message).toMatch(/newer connection on another replica/);
    old.close();
    expect(one.list()).toEqual([]);
    await sessionRows.release(db, "r1", { kind: "bmc", partition: "p1", daemonId: "bmc-1", connectedAt: at(1_000) });
    expect(await rowsOf()).toEqual([{ kind: "bmc", daemonId: "bmc-1", replica: "r2", connectedAt: at(2_000), lastSeen: at(2_000) }]);
    expect(fresh.signal.aborted).toBe(false);

    // r2 still holds it at its heartbeat; its own close deletes it.
    await two.sync();
    expect(fresh.signal.aborted).toBe(false);
    fresh.close();
    await eventually("the row gone", async () => (await rowsOf()).length === 0);
  });

  it("two connections in the same millisecond on two replicas: both replicas agree which one holds the row", async () => {
    await clear();
    await replicas.register(db, identity("r1"));
    await replicas.register(db, identity("r2"));
    const s = { kind: "switch" as const, partition: "p1", daemonId: "leaf01", connectedAt: at(5_000), lastSeen: at(5_000) };
    const key = sessionKey(s);
    expect((await sessionRows.hold(db, "r2", [s])).has(key)).toBe(true);
    expect((await sessionRows.hold(db, "r1", [s])).has(key)).toBe(false);
    expect((await sessionRows.hold(db, "r2", [s])).has(key)).toBe(true);
    expect((await rowsOf()).map((r) => r.replica)).toEqual(["r2"]);
  });

  it("a session closed while a heartbeat writes its row does not leave the row behind", async () => {
    await clear();
    await replicas.register(db, identity("r1"));
    const registry = new ConnectionRegistry("r1", { db, onError: failOnError });
    const handles = Array.from({ length: 50 }, (_, i) => registry.register("bmc", `agent-${i}`, "p1"));
    await eventually("the rows", async () => (await rowsOf()).length === 50);
    // The heartbeat's statement and the closes race; whatever order they land in, no row of a closed session stays.
    const beat = registry.sync();
    for (const h of handles.slice(0, 25)) h.close();
    await beat;
    await eventually("the closed sessions' rows gone", async () => (await rowsOf()).length === 25);
    expect((await rowsOf()).map((r) => r.daemonId).sort()).toEqual(
      handles
        .slice(25)
        .map((h) => h.connection.id)
        .sort(),
    );
    registry.closeAll();
  });

  it("lists every replica's sessions by kind, partition and id in byte order, with the replica's address", async () => {
    await clear();
    await replicas.register(db, identity("r1"));
    await replicas.register(db, identity("r2"));
    const s = (kind: "switch" | "bmc", partition: string, daemonId: string) => ({ kind, partition, daemonId, connectedAt: at(0), lastSeen: at(0) });
    await sessionRows.hold(db, "r1", [s("switch", "p1", "leaf02"), s("bmc", "p2", "a"), s("switch", "p1", "Leaf03")]);
    await sessionRows.hold(db, "r2", [s("switch", "p1", "leaf01"), s("bmc", "p1", "b")]);
    const listed = await sessionRows.list(db);
    expect(listed.map((r) => `${r.kind}/${r.partition}/${r.daemonId}@${r.replica}`)).toEqual(["bmc/p1/b@r2", "bmc/p2/a@r1", "switch/p1/Leaf03@r1", "switch/p1/leaf01@r2", "switch/p1/leaf02@r1"]);
    expect(listed[0]!.replicaAddress).toBe("r2.internal:8080");
    expect((await sessionRows.list(db, { kind: "bmc", partition: "p2" })).map((r) => r.daemonId)).toEqual(["a"]);
  });
});
