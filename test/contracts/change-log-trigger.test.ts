import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
const rows = async <T>(q: ReturnType<typeof sql>) => ((await db.execute(q)) as unknown as { rows: T[] }).rows;

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
});

/** Columns whose change alone is not a change a client sees: the key, the lease, the bookkeeping times, the credential generation (moved on with the allocation it belongs to). */
const NOT_WATCHED = new Set(["id", "waiting_until", "created_at", "updated_at", "credential_generation"]);

describe("the machines change-log trigger (migration 0008)", () => {
  it("names every column of machines in its WHEN clause, so a column added later is not missed", async () => {
    const columns = await rows<{ name: string }>(sql`select column_name as name from information_schema.columns where table_schema = 'public' and table_name = 'machines'`);
    const [trigger] = await rows<{ def: string }>(sql`select pg_get_triggerdef(oid) as def from pg_trigger where tgname = 'machines_change_log_update'`);
    expect(trigger, "the update trigger exists").toBeDefined();
    const missing = columns.map((c) => c.name).filter((name) => !NOT_WATCHED.has(name) && !new RegExp(`old\\.${name}\\b`, "i").test(trigger!.def.replaceAll('"', "")));
    expect(missing, "columns of machines the change-log trigger does not compare").toEqual([]);
  });

  it("logs no change for a lease renewal, but one for becoming waiting, for a tag, and for no longer waiting", async () => {
    await db.execute(sql`insert into machines (id) values ('trigger-m')`);
    const count = async () => (await rows<{ n: number }>(sql`select count(*)::int as n from change_log where entity_id = 'trigger-m'`))[0]!.n;
    expect(await count()).toBe(1); // created
    await db.execute(sql`update machines set waiting_until = now() + interval '1 minute' where id = 'trigger-m'`);
    expect(await count()).toBe(2); // started waiting
    await db.execute(sql`update machines set waiting_until = now() + interval '2 minutes' where id = 'trigger-m'`);
    expect(await count()).toBe(2); // renewed: nothing a client sees
    await db.execute(sql`update machines set tags = '["t"]'::jsonb where id = 'trigger-m'`);
    expect(await count()).toBe(3);
    await db.execute(sql`update machines set waiting_until = null where id = 'trigger-m'`);
    expect(await count()).toBe(4); // stopped waiting
    await db.execute(sql`update machines set waiting_until = null where id = 'trigger-m'`);
    expect(await count()).toBe(4); // nothing changed at all
  });
});
