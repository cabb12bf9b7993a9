import { randomUUID } from "node:crypto";
import { eq, inArray } from "drizzle-orm";
import pg from "pg";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { bmcCommands, machines } from "../../server/db/schema/index.js";
import { uuidv7 } from "../../server/ids.js";
import { COMMAND_EXPIRY_LOCK, runCommandExpiryJob, TIMED_OUT_RESULT } from "../../server/jobs/command-expiry.js";
import { eventually } from "../helpers/eventually.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
let url: string;
const machine = randomUUID();
const now = new Date("2026-03-01T10:00:00Z");
const minutes = (n: number) => new Date(now.getTime() + n * 60_000);

beforeAll(async () => {
  ({ db, url } = await useMetalDatabase({ poolSize: 8 }));
  await db.insert(machines).values({ id: machine, partitionId: "p1" });
});

beforeEach(async () => {
  await db.delete(bmcCommands);
});

async function command(deadline: Date, status: "pending" | "done" | "failed" = "pending", result = ""): Promise<string> {
  const id = uuidv7();
  await db.insert(bmcCommands).values({ id, machineId: machine, partitionId: "p1", command: "RESET", deadline, status, result });
  return id;
}

const statusOf = async (id: string) => (await db.select().from(bmcCommands).where(eq(bmcCommands.id, id)))[0]!;

/** A separate connection, as another replica (or metal-bmc) would hold it. */
async function connection(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

/** Waits until some transaction holds the job lock, i.e. a run is under way. */
async function untilJobRuns(probe: pg.Client): Promise<void> {
  await eventually("the job to take its lock", async () => {
    const r = await probe.query("select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = $1 and granted", [COMMAND_EXPIRY_LOCK]);
    return r.rows[0].n === 1;
  });
}

describe("BMC command expiry", () => {
  it("times out pending commands past their deadline and nothing else", async () => {
    const due = await command(minutes(-1));
    const later = await command(minutes(5));
    const done = await command(minutes(-10), "done", "ok");
    const failed = await command(minutes(-10), "failed", "ipmitool: timeout");

    expect(await runCommandExpiryJob(db, now)).toEqual([due]);
    expect(await statusOf(due)).toMatchObject({ status: "timed_out", result: TIMED_OUT_RESULT, updatedAt: now });
    expect(await statusOf(later)).toMatchObject({ status: "pending", result: "" });
    expect(await statusOf(done)).toMatchObject({ status: "done", result: "ok" });
    expect(await statusOf(failed)).toMatchObject({ status: "failed", result: "ipmitool: timeout" });
    // Nothing is due any more; the next deadline passes later.
    expect(await runCommandExpiryJob(db, now)).toEqual([]);
    expect(await runCommandExpiryJob(db, minutes(6))).toEqual([later]);
  });

  it("skips while another replica runs the job", async () => {
    const due = await command(minutes(-1));
    const other = await connection();
    try {
      await other.query("begin");
      await other.query("select pg_advisory_xact_lock($1)", [COMMAND_EXPIRY_LOCK]);
      expect(await runCommandExpiryJob(db, now)).toBeUndefined();
      expect((await statusOf(due)).status).toBe("pending");
      await other.query("commit");
    } finally {
      await other.end();
    }
    expect(await runCommandExpiryJob(db, now)).toEqual([due]);
  });

  it("lets only one of two concurrent runs do the work", async () => {
    const due = await Promise.all(Array.from({ length: 20 }, (_, i) => command(minutes(-1 - i))));
    // A metal-bmc connection holds one due command for a moment, so the first run is caught mid-work, holding the job lock.
    const bmc = await connection();
    const probe = await connection();
    try {
      await bmc.query("begin");
      await bmc.query("select id from bmc_commands where id = $1 for update", [due[0]]);
      const first = runCommandExpiryJob(db, now);
      await untilJobRuns(probe);
      const second = await runCommandExpiryJob(db, now);
      expect(second).toBeUndefined();
      await bmc.query("commit");
      expect((await first)!.sort()).toEqual([...due].sort());
    } finally {
      await Promise.all([bmc.end(), probe.end()]);
    }
    const rows = await db.select().from(bmcCommands).where(inArray(bmcCommands.id, due));
    expect(rows.every((r) => r.status === "timed_out")).toBe(true);
  });

  it("never overwrites a result metal-bmc reports while the job runs", async () => {
    const due = await command(minutes(-1));
    const bmc = await connection();
    const probe = await connection();
    try {
      // metal-bmc acknowledges the command in a transaction that commits after the job has started.
      await bmc.query("begin");
      await bmc.query("update bmc_commands set status = 'done', result = 'ok' where id = $1", [due]);
      const job = runCommandExpiryJob(db, now);
      await untilJobRuns(probe);
      await bmc.query("commit");
      expect(await job).toEqual([]);
    } finally {
      await Promise.all([bmc.end(), probe.end()]);
    }
    expect(await statusOf(due)).toMatchObject({ status: "done", result: "ok" });
  });
});
