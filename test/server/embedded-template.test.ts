import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openMetalDatabase } from "../../server/db/metal-database.js";
import { openMasterdataDatabase } from "../../server/masterdata/database.js";

/**
 * A new embedded data directory starts as a copy of a migrated template
 * (server/db/embedded.ts), an in-memory database as its image: each must be
 * a database of its own, fully migrated, and a directory keeps what is
 * written to it across a reopen.
 */
describe("embedded databases from templates", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "embedded-template-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const rows = async (db: Awaited<ReturnType<typeof openMetalDatabase>>["db"], query: ReturnType<typeof sql>) => (await db.execute(query)) as unknown as { rows: Record<string, unknown>[] };

  it("gives every new directory its own fully migrated database, which keeps its data across a reopen", async () => {
    const journal = JSON.parse(await readFile(new URL("../../server/db/migrations/meta/_journal.json", import.meta.url), "utf8")) as { entries: unknown[] };
    const a = await openMetalDatabase({ url: undefined, dataDir: join(dir, "a") });
    const b = await openMetalDatabase({ url: undefined, dataDir: join(dir, "b") });
    try {
      for (const db of [a.db, b.db]) {
        const applied = await rows(db, sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
        expect(applied.rows[0]!.n).toBe(journal.entries.length);
      }
      await a.db.execute(sql`insert into partitions (id, name) values ('only-in-a', 'a')`);
      const inB = await rows(b.db, sql`select count(*)::int as n from partitions where id = 'only-in-a'`);
      expect(inB.rows[0]!.n).toBe(0);
      // The buffers an embedded open prepares: what made every start slow at PostgreSQL's default of 128 MB.
      expect((await rows(a.db, sql`show shared_buffers`)).rows[0]!.shared_buffers).toBe("8MB");
    } finally {
      await a.close();
      await b.close();
    }
    const again = await openMetalDatabase({ url: undefined, dataDir: join(dir, "a") });
    try {
      expect((await rows(again.db, sql`select name from partitions where id = 'only-in-a'`)).rows).toEqual([{ name: "a" }]);
    } finally {
      await again.close();
    }
  });

  it("loads in-memory databases from the template's image: migrated, and each one its own", async () => {
    const journal = JSON.parse(await readFile(new URL("../../server/db/migrations/meta/_journal.json", import.meta.url), "utf8")) as { entries: unknown[] };
    const a = await openMetalDatabase({ url: undefined, dataDir: undefined });
    const b = await openMetalDatabase({ url: undefined, dataDir: undefined });
    try {
      expect((await rows(a.db, sql`select count(*)::int as n from drizzle.__drizzle_migrations`)).rows[0]!.n).toBe(journal.entries.length);
      await a.db.execute(sql`insert into partitions (id, name) values ('only-in-a', 'a')`);
      expect((await rows(a.db, sql`select count(*)::int as n from partitions`)).rows[0]!.n).toBe(1);
      expect((await rows(b.db, sql`select count(*)::int as n from partitions`)).rows[0]!.n).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("makes masterdata's database from its own template (its own migrations)", async () => {
    const md = await openMasterdataDatabase({ url: undefined, dataDir: join(dir, "md") });
    try {
      const tables = (await md.db.execute(sql`select count(*)::int as n from information_schema.tables where table_name in ('tenants', 'partitions')`)) as unknown as { rows: { n: number }[] };
      // masterdata has tenants and no partitions: the metal template was not used for it.
      expect(tables.rows[0]!.n).toBe(1);
    } finally {
      await md.close();
    }
  });
});
