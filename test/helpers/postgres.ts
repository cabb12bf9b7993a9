import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

/** The server tests run against; CI exports it, locally the default is the machine's PostgreSQL. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A database already migrated to the current schema, copied instead of migrated for each test file. */
export type MigratedTemplate = "metal" | "masterdata";

export interface ScratchDatabaseOptions {
  /**
   * Start as a copy of the migrated metal or masterdata database
   * (`CREATE DATABASE ... TEMPLATE`, ~4x faster than running the migrations);
   * the server's own migrate step then finds nothing to do. Without it the
   * database is empty and the server migrates it, as on a first start.
   */
  from?: MigratedTemplate;
}

export interface ScratchDatabase {
  url: string;
  /** Drops the database and waits for it. */
  drop(): Promise<void>;
  /**
   * Drops the database in the background: a test file's teardown need not
   * wait (a drop takes up to seconds on a busy machine). If the process
   * ends first, the next run's global setup drops what is left.
   */
  dropLater(): void;
}

/** Scratch database names: `<prefix>_<pid of the creating process>_<8 hex>`; the pid tells whether its owner still runs. */
const SCRATCH_NAME = /^[a-z][a-z0-9_]*_(\d+)_[0-9a-f]{8}$/;

/**
 * Creates a database for one test file and returns its URL and a drop
 * function, so test files never see each other's rows and can run in parallel.
 */
export async function createScratchDatabase(prefix = "metal_test", opts: ScratchDatabaseOptions = {}): Promise<ScratchDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString("hex")}`;
  const template = opts.from ? await migratedTemplate(opts.from) : undefined;
  await withAdmin((admin) => admin.query(`create database "${name}"${template ? ` template "${template}"` : ""}`));
  const drop = () => withAdmin((admin) => admin.query(`drop database if exists "${name}" with (force)`)).then(() => {});
  return { url: databaseUrl(name), drop, dropLater: () => void drop().catch(() => {}) };
}

/** Drops the scratch databases whose creating process is gone (killed runs, drops a worker did not live to finish). */
export async function dropScratchDatabasesOfEndedProcesses(): Promise<void> {
  await withAdmin(async (admin) => {
    const names = (await admin.query<{ datname: string }>("select datname from pg_database where not datistemplate")).rows.map((r) => r.datname);
    return names.filter((name) => {
      const pid = SCRATCH_NAME.exec(name)?.[1];
      return pid !== undefined && !processRuns(Number(pid));
    });
  }).then(async (orphans) => {
    // A few at a time: one connection drops them one by one, slowly.
    const lanes = Array.from({ length: 4 }, async (_, lane) => {
      for (let i = lane; i < orphans.length; i += 4) await withAdmin((admin) => admin.query(`drop database if exists "${orphans[i]}" with (force)`));
    });
    await Promise.all(lanes);
  });
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, under another user.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Creates the migrated templates now, if they do not exist yet. */
export async function prepareMigratedTemplates(): Promise<void> {
  await Promise.all([migratedTemplate("metal"), migratedTemplate("masterdata")]);
}

function databaseUrl(name: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withAdmin<T>(work: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

const MIGRATIONS: Record<MigratedTemplate, string> = {
  metal: fileURLToPath(new URL("../../server/db/migrations", import.meta.url)),
  masterdata: fileURLToPath(new URL("../../server/masterdata/db/migrations", import.meta.url)),
};

/** Serialises the creation of templates by concurrently starting test files (and concurrent runs). */
const TEMPLATE_LOCK_KEY = 7_401;

const templates = new Map<MigratedTemplate, Promise<string>>();

/**
 * The name of a database migrated to the current migrations of `kind`,
 * created once and kept between runs. Its name carries a hash of the
 * migration files, so editing or adding a migration makes a new template
 * instead of reusing a stale one.
 */
function migratedTemplate(kind: MigratedTemplate): Promise<string> {
  let name = templates.get(kind);
  if (!name) {
    name = createTemplateOnce(kind);
    templates.set(kind, name);
  }
  return name;
}

async function createTemplateOnce(kind: MigratedTemplate): Promise<string> {
  const name = `tpl_${kind}_${await hashOfFolder(MIGRATIONS[kind])}`;
  return withAdmin(async (admin) => {
    await admin.query("select pg_advisory_lock($1)", [TEMPLATE_LOCK_KEY]);
    try {
      const exists = await admin.query("select 1 from pg_database where datname = $1", [name]);
      if (exists.rowCount) return name;
      // Migrate under another name and rename at the end: a template that is visible is complete.
      const building = `${name}_building`;
      await admin.query(`drop database if exists "${building}" with (force)`);
      await admin.query(`create database "${building}"`);
      const database = await openMigrated(kind, databaseUrl(building));
      await database.close();
      await admin.query(`alter database "${building}" rename to "${name}"`);
      return name;
    } finally {
      await admin.query("select pg_advisory_unlock($1)", [TEMPLATE_LOCK_KEY]);
    }
  });
}

async function openMigrated(kind: MigratedTemplate, url: string): Promise<{ close(): Promise<void> }> {
  if (kind === "metal") {
    const { openMetalDatabase } = await import("../../server/db/metal-database.js");
    return openMetalDatabase({ url, dataDir: undefined, poolSize: 1 });
  }
  const { openMasterdataDatabase } = await import("../../server/masterdata/database.js");
  return openMasterdataDatabase({ url, dataDir: undefined, poolSize: 1 });
}

async function hashOfFolder(folder: string): Promise<string> {
  const hash = createHash("sha256");
  const walk = async (dir: string) => {
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else hash.update(entry.name).update(await readFile(path));
    }
  };
  await walk(folder);
  return hash.digest("hex").slice(0, 16);
}
