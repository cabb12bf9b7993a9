import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { openPglite } from "./embedded.js";

/**
 * The database side of metal-backup (server/backup/): what it asks of a
 * database besides pg_dump and pg_restore, and PGlite's own dump and load.
 * Here because only the data layer talks to database drivers.
 */

export interface DatabaseFacts {
  /** Tables in every schema but PostgreSQL's own. */
  tables: number;
  /** drizzle's migration journal as the database records it. */
  migrations: { count: number; last: number };
  serverVersion: string;
}

const TABLES = `select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'`;
const HAS_JOURNAL = "select to_regclass('drizzle.__drizzle_migrations') is not null as present";
const JOURNAL = "select count(*)::int as count, coalesce(max(created_at), 0)::text as last from drizzle.__drizzle_migrations";

type Query = <R>(sql: string) => Promise<R[]>;

async function facts(query: Query): Promise<DatabaseFacts> {
  const [{ n }] = (await query<{ n: number }>(TABLES)) as [{ n: number }];
  const [{ present }] = (await query<{ present: boolean }>(HAS_JOURNAL)) as [{ present: boolean }];
  const [journal] = present ? await query<{ count: number; last: string }>(JOURNAL) : [{ count: 0, last: "0" }];
  const [{ server_version }] = (await query<{ server_version: string }>("show server_version")) as [{ server_version: string }];
  return { tables: n, migrations: { count: journal!.count, last: Number(journal!.last) }, serverVersion: server_version };
}

/** The facts of a PostgreSQL database. */
export async function inspectPostgres(url: string): Promise<DatabaseFacts> {
  const client = new pg.Client({ connectionString: url, application_name: "metal-backup" });
  client.on("error", () => {});
  await client.connect();
  try {
    return await facts(async (sql) => (await client.query(sql)).rows);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Runs `fn` holding session advisory locks, one per database (url, key):
 * the keys of metal-api's migration locks, so replicas starting meanwhile
 * neither migrate a database being restored nor restore it a second time.
 */
export async function withAdvisoryLocks<T>(locks: readonly { url: string; key: number }[], fn: () => Promise<T>): Promise<T> {
  const held: pg.Client[] = [];
  try {
    for (const l of locks) {
      const client = new pg.Client({ connectionString: l.url, application_name: "metal-backup" });
      client.on("error", () => {});
      await client.connect();
      held.push(client);
      await client.query("select pg_advisory_lock($1)", [l.key]);
    }
    return await fn();
  } finally {
    for (const c of held.reverse()) await c.end().catch(() => {});
  }
}

/** A PGlite data directory holds a database (not missing, not empty). */
export const pgliteDirInUse = (dir: string): boolean => existsSync(dir) && readdirSync(dir).length > 0;

/** PGlite leaves this in its data directory while it has it open (and after a crash). */
export const pgliteOpen = (dir: string): boolean => existsSync(`${dir}/postmaster.pid`);

/** The facts of a PGlite data directory and, when `dump`, its data directory as PGlite dumps it (a gzipped tar). */
export async function inspectPglite(dir: string, dump: boolean): Promise<{ facts: DatabaseFacts; image?: Blob; pgliteVersion: string }> {
  // Opened as metal-api opens it (the process's one compiled wasm module, its start parameters); the caller made sure it exists.
  const db = await openPglite(dir);
  try {
    const f = await facts(async (sql) => (await db.query(sql)).rows as never);
    const image = dump ? await db.dumpDataDir("gzip") : undefined;
    return { facts: f, image, pgliteVersion: pgliteVersion() };
  } finally {
    await db.close();
  }
}

/** The PGlite release: a dump of its data directory loads into the same one. */
export function pgliteVersion(): string {
  try {
    const dist = dirname(createRequire(import.meta.url).resolve("@electric-sql/pglite"));
    return (JSON.parse(readFileSync(join(dist, "..", "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/**
 * Makes `dir` (which must not exist) a PGlite data directory from a dump,
 * and returns the facts of the database it now holds. The directory is
 * made beside it and renamed into place when PGlite has opened it cleanly.
 */
export async function loadPglite(dir: string, image: Blob): Promise<DatabaseFacts> {
  const tmp = `${dir}.restoring-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(dirname(dir), { recursive: true });
  try {
    const db = new PGlite(tmp, { loadDataDir: image });
    let f: DatabaseFacts;
    try {
      await db.waitReady;
      f = await facts(async (sql) => (await db.query(sql)).rows as never);
    } finally {
      await db.close();
    }
    await rename(tmp, dir);
    return f;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** How far this release's migrations of a database go: its drizzle journal (`count` entries, the newest `when`). */
export function knownMigrations(database: "metal" | "masterdata"): { count: number; last: number } {
  const url = database === "metal" ? new URL("./migrations/meta/_journal.json", import.meta.url) : new URL("../masterdata/db/migrations/meta/_journal.json", import.meta.url);
  const journal = JSON.parse(readFileSync(url, "utf8")) as { entries: { when: number }[] };
  return { count: journal.entries.length, last: Math.max(0, ...journal.entries.map((e) => e.when)) };
}

/** The advisory lock keys of the migrations (server/db/metal-database.ts, server/masterdata/database.ts). */
export const MIGRATION_LOCK_KEYS = { metal: 7201, masterdata: 7301 } as const;
