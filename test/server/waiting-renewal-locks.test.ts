import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { machineAllocationRepository } from "../../server/repositories/machine-repository.js";
import { eventually } from "../helpers/eventually.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

/**
 * The Wait registry renews the leases of all machines waiting on a replica in
 * one statement, while event batches lock machine rows in id order. If the
 * renewal took its row locks in any other order, the two deadlocked and the
 * renewal failed (machines stopped counting as waiting) — seen under load,
 * when PostgreSQL scanned the table instead of the primary key.
 */
describe("lease renewal and row locks", () => {
  it("a renewal over machines another transaction is locking one by one in id order finishes without a deadlock", async () => {
    const { db, url } = await useMetalDatabase();
    // Inserted in reverse id order, so a sequential scan meets the higher id first.
    const low = "0196a3c4-0000-7000-8000-00000000d001";
    const high = "0196a3c4-0000-7000-8000-00000000d002";
    for (const id of [high, low]) {
      await db.execute(sql`insert into machines (id, partition_id, waiting_until) values (${id}, null, now() + interval '1 minute')`);
    }

    // The renewal's connection plans like a big table does: a scan, not the primary key.
    const renewalPool = new pg.Pool({ connectionString: url, max: 1, options: "-c enable_indexscan=off -c enable_bitmapscan=off -c enable_indexonlyscan=off" });
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    afterAll(async () => {
      await locker.end().catch(() => {});
      await renewalPool.end();
    });
    const renewalDb = drizzle(renewalPool) as unknown as DbHandle;

    // An event batch holds the lower id and will take the higher one next.
    await locker.query("begin");
    await locker.query("select id from machines where id = $1 for update", [low]);
    const until = new Date(Date.now() + 3_600_000);
    const renewal = machineAllocationRepository.extendWaitingMany(renewalDb, [high, low], until);
    const renewalError = renewal.then(
      () => undefined,
      (err: unknown) => err,
    );
    // The renewal waits for the lower id's lock...
    await eventually("the renewal waits for a row lock", async () => {
      // Asked on a connection of its own: inside the locker's transaction the activity view is a snapshot.
      const waiting = (await db.execute(sql`select 1 from pg_stat_activity where wait_event_type = 'Lock' and query ilike '%waiting_until%'`)) as unknown as { rows: unknown[] };
      return waiting.rows.length === 1;
    });
    // ...while holding no other: the batch gets the higher id at once, no deadlock either side.
    await locker.query("select id from machines where id = $1 for update", [high]);
    await locker.query("commit");
    expect(await renewalError).toBeUndefined();

    const rows = (await db.execute(sql`select id, waiting_until as w from machines order by id`)) as unknown as { rows: { id: string; w: Date | string }[] };
    expect(rows.rows.map((r) => [r.id, new Date(r.w).getTime()])).toEqual([
      [low, until.getTime()],
      [high, until.getTime()],
    ]);
  });
});
