import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { inTransaction } from "../../server/db/database.js";
import { eventually } from "../helpers/eventually.js";
import { insertWaitingMachines, type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Allocation passes over machines that another allocation has locked (SKIP
 * LOCKED), so parallel allocations do not queue. But event batches and lease
 * renewals lock machine rows too, briefly, and in a small partition they may
 * hold every waiting machine at once: an allocation must then wait for them,
 * not answer "no machine is waiting" (the lab's tests met exactly that under load).
 */
let server: TestServer;
let fixture: PartitionFixture;
let ids: string[];

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  ids = await insertWaitingMachines(server, 2);
});

afterAll(() => fixture.stopAll());

describe("allocation while every waiting machine is briefly locked", () => {
  it("waits for the rows instead of answering that no machine is waiting", async () => {
    // What an event batch does: all machines of the batch locked in id order, held until it commits.
    let commit!: () => void;
    const committing = new Promise<void>((resolve) => (commit = resolve));
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const batch = inTransaction(server.app.db, async (tx) => {
      await tx.execute(
        sql`select id from machines where id in (${sql.join(
          ids.map((id) => sql`${id}`),
          sql`, `,
        )}) order by id for update`,
      );
      held();
      await committing;
    });
    await holding;

    const tenant = server.client(MachineService, server.adminToken);
    const allocation = tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "busy", networks: [fixture.primary.pb] });
    const outcome = allocation.then(
      (res) => ({ ok: res.machine?.id }),
      (err: unknown) => ({ err: String(err) }),
    );
    // The allocation is queued behind the batch's row locks...
    let settled: unknown;
    void outcome.then((o) => (settled = o));
    await eventually("the allocation to wait for a machine row", async () => {
      if (settled !== undefined) throw new Error(`the allocation ended without waiting: ${JSON.stringify(settled)}`);
      // The candidate statement (its text is cut before its FOR UPDATE clause in this view), waiting on a row lock in this database.
      const res = (await server.app.db.execute(
        sql`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like 'select "machines"."id"%inner join "machine_events"%'`,
      )) as unknown as { rows: unknown[] };
      return res.rows.length > 0;
    });
    // ...and gets one of the machines once the batch commits.
    commit();
    await batch;
    const result = await outcome;
    expect(result).toEqual({ ok: expect.any(String) });
    expect(ids).toContain((result as { ok: string }).ok);
  });
});
