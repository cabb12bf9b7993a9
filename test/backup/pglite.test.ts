import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPglite } from "../../server/db/embedded.js";
import { openMetalDatabase } from "../../server/db/metal-database.js";
import { openMasterdataDatabase } from "../../server/masterdata/database.js";
import { scaled } from "../helpers/timeouts.js";
import { metalBackup } from "./backup-helpers.js";

/**
 * The embedded databases (PGlite, no DATABASE_URL): the same commands,
 * PGlite's own dump of each data directory, taken while metal-api is
 * stopped.
 */
let dir: string;
let env: Record<string, string>;

/** Every row of every table of a PGlite data directory, in a stable order. */
async function snapshotPglite(dataDir: string): Promise<Record<string, unknown>> {
  const db = await openPglite(dataDir);
  try {
    const tables = (
      await db.query<{ t: string }>("select format('%I.%I', schemaname, tablename) as t from pg_tables where schemaname not in ('pg_catalog', 'information_schema') order by schemaname, tablename")
    ).rows.map((r) => r.t);
    const out: Record<string, unknown> = {};
    for (const t of tables) out[t] = (await db.query<{ rows: unknown }>(`select coalesce(json_agg(x order by x::text), '[]'::json) as rows from ${t} x`)).rows[0]!.rows;
    return out;
  } finally {
    await db.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "metal-backup-pglite-"));
  env = { METAL_DATA_DIR: join(dir, "data"), METAL_BACKUP_DIR: join(dir, "backups") };
}, scaled(120_000));

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("metal-backup on the embedded databases", () => {
  it("refuses while metal-api has them open, backs them up when stopped, restores them identical", async () => {
    const metal = await openMetalDatabase({ url: undefined, dataDir: join(dir, "data", "metal-db") });
    const md = await openMasterdataDatabase({ url: undefined, dataDir: join(dir, "data", "masterdata-db") });
    await metal.db.execute(sql`create table backup_probe (id int primary key, note text)`);
    await metal.db.execute(sql`insert into backup_probe values (1, 'kept by the backup'), (2, 'ümlaut')`);
    await md.db.execute(sql`create table backup_probe (id int primary key)`);
    await md.db.execute(sql`insert into backup_probe values (7)`);

    const open = await metalBackup(["backup"], env);
    expect(open.code).toBe(1);
    expect(open.stderr).toMatch(/the embedded metal database in .* is open \(metal-api runs on it, or stopped uncleanly\): stop metal-api first/);

    await metal.close();
    await md.close();
    const before = { metal: await snapshotPglite(join(dir, "data", "metal-db")), md: await snapshotPglite(join(dir, "data", "masterdata-db")) };
    expect(before.metal["public.backup_probe"]).toHaveLength(2);

    const made = await metalBackup(["backup"], env);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stderr).toMatch(/not encrypted, and it holds secrets/);
    const id = made.stdout.trim();
    expect((await metalBackup(["list"], env)).stdout).toMatch(new RegExp(`${id} .* pglite  not encrypted`));

    const refused = await metalBackup(["restore"], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the embedded metal database in .* exists; the embedded masterdata database in .* exists: restore goes into empty databases only/);

    await rm(join(dir, "data"), { recursive: true, force: true });
    const restored = await metalBackup(["restore"], env);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await snapshotPglite(join(dir, "data", "metal-db"))).toEqual(before.metal);
    expect(await snapshotPglite(join(dir, "data", "masterdata-db"))).toEqual(before.md);
    // metal-api opens what was restored (its migrations find nothing to do).
    const again = await openMetalDatabase({ url: undefined, dataDir: join(dir, "data", "metal-db") });
    expect(((await again.db.execute(sql`select count(*)::int as n from backup_probe`)) as unknown as { rows: { n: number }[] }).rows[0]!.n).toBe(2);
    await again.close();
  });

  it("has no schedule for them: run says why", async () => {
    const r = await metalBackup(["run"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/an embedded \(PGlite\) database cannot be read while metal-api has it open/);
  });
});
