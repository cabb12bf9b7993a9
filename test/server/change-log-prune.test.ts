import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { changeLogRepository as changes } from "../../server/repositories/change-log-repository.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
const HOUR = 3600_000;

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
});

/** Makes `n` machine changes (one transaction each) dated `ageMs` ago; returns their transaction ids. */
async function changesAged(prefix: string, n: number, ageMs: number): Promise<number[]> {
  for (let i = 0; i < n; i++) await db.execute(sql`insert into machines (id) values (${`${prefix}-${i}`})`);
  const rows = (await db.execute(sql`update change_log set at = now() - make_interval(secs => ${ageMs / 1000}) where entity_id like ${`${prefix}-%`} returning tx`)) as unknown as {
    rows: { tx: string }[];
  };
  return rows.rows.map((r) => Number(r.tx)).sort((a, b) => a - b);
}

const remaining = async (prefix: string) => ((await db.execute(sql`select count(*)::int as n from change_log where entity_id like ${`${prefix}-%`}`)) as unknown as { rows: { n: number }[] }).rows[0]!.n;

describe("change log pruning", () => {
  it("deletes what is older than the retention and records how far, so a reader behind that starts over", async () => {
    await db.execute(sql`delete from change_cursors`);
    const old = await changesAged("plain_old", 3, 2 * HOUR);
    const fresh = await changesAged("plain_new", 2, 0);
    expect(await changes.prune(db, new Date(Date.now() - HOUR))).toBeGreaterThanOrEqual(3);
    expect(await remaining("plain_old")).toBe(0);
    expect(await remaining("plain_new")).toBe(2);
    expect(await changes.prunedTx(db)).toBeGreaterThanOrEqual(Math.max(...old));
    expect(await changes.prunedTx(db)).toBeLessThan(Math.min(...fresh));
  });

  it("keeps changes the event feed has not published yet, up to the feed's backlog limit", async () => {
    const published = await changesAged("feed-done", 2, 3 * HOUR);
    const unpublished = await changesAged("feed-todo", 2, 3 * HOUR);
    const ancient = await changesAged("feed-ancient", 1, 10 * 24 * HOUR);
    // The feed published up to the first batch only; its cursor moved recently.
    await changes.saveCursor(db, "event-feed", Math.max(...published));
    expect(Math.min(...unpublished)).toBeGreaterThan(Math.max(...published));
    expect(ancient[0]).toBeGreaterThan(Math.max(...published));
    await changes.prune(db, new Date(Date.now() - HOUR));
    expect(await remaining("feed-done")).toBe(0);
    expect(await remaining("feed-todo")).toBe(2);
    // Older than the backlog limit (a week): gone even though the feed never published it.
    expect(await remaining("feed-ancient")).toBe(0);
  });

  it("ignores a feed cursor that has not moved for longer than the backlog limit (the feed was switched off)", async () => {
    const todo = await changesAged("feed-off", 2, 3 * HOUR);
    await changes.saveCursor(db, "event-feed", Math.min(...todo) - 1);
    await db.execute(sql`update change_cursors set updated_at = now() - interval '8 days' where name = 'event-feed'`);
    await changes.prune(db, new Date(Date.now() - HOUR));
    expect(await remaining("feed-off")).toBe(0);
  });
});
