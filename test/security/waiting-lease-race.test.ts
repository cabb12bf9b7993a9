import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { inTransaction } from "../../server/db/database.js";
import { machineLifecycleRepository as lifecycle } from "../../server/repositories/machine-repository.js";
import { WaitingRegistry } from "../../server/sessions/wait/waiting.js";
import { startTestServer } from "../helpers/test-server.js";

/**
 * A Wait stream's periodic renewal must never revive the lease of a machine
 * that was allocated and freed meanwhile: the freed machine is being
 * reclaimed (reset, PXE, wipe) and may be handed out again only once its
 * hammer opens a NEW Wait stream.
 */
describe("waiting leases across an allocation", () => {
  it("a renewal of a stream still registered does not bring back the lease freeing cleared; a new stream does", async () => {
    const server = await startTestServer();
    const db = server.app.db;
    const id = "0196a3c4-0000-7000-8000-00000000abcd";
    await db.execute(sql`insert into machines (id, partition_id) values (${id}, null)`);
    const lease = async () => {
      const res = (await db.execute(sql`select waiting_until as w from machines where id = ${id}`)) as unknown as { rows: { w: unknown }[] };
      return res.rows[0]!.w;
    };
    // Timers far away: the test drives renewals itself.
    const registry = new WaitingRegistry(db, { leaseMs: 3_600_000, recheckMs: 3_600_000 });
    const leave = await registry.add(id, () => {});
    expect(await lease()).not.toBeNull();

    // Allocated (which ends the lease) and freed again, while the old stream is still registered here
    // (its bus message was lost, or its end has not been processed yet).
    await db.execute(sql`update machines set allocation = '{}'::jsonb, project = 'p', waiting_until = null where id = ${id}`);
    await inTransaction(db, (tx) => lifecycle.release(tx, id));
    await registry.renewAll();
    expect(await lease()).toBeNull();

    // The reclaimed machine's hammer opens a new stream: now it waits again.
    const again = await registry.add(id, () => {});
    expect(await lease()).not.toBeNull();
    await again();
    await leave();
  });

  it("the end of an old stream does not strand a new one: a hammer that reconnected (here to another replica) keeps waiting", async () => {
    const server = await startTestServer();
    const db = server.app.db;
    const id = "0196a3c4-0000-7000-8000-00000000abce";
    await db.execute(sql`insert into machines (id, partition_id) values (${id}, null)`);
    const waiting = async () => {
      const res = (await db.execute(sql`select waiting_until > now() as w from machines where id = ${id}`)) as unknown as { rows: { w: boolean | null }[] };
      return res.rows[0]!.w === true;
    };
    const timing = { leaseMs: 3_600_000, recheckMs: 3_600_000 };
    const replica1 = new WaitingRegistry(db, timing);
    const replica2 = new WaitingRegistry(db, timing);
    const leaveOld = await replica1.add(id, () => {});
    // The hammer's new stream starts its lease before the old stream's end is processed.
    const leaveNew = await replica2.add(id, () => {});
    await leaveOld();
    // The new stream's next renewal carries the machine on: it waits, as its hammer does.
    await replica2.renewAll();
    expect(await waiting()).toBe(true);
    await leaveNew();
    expect(await waiting()).toBe(false);
  });
});
