import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import type { AdditivityException } from "./additive.js";

/** The two databases of metal-api, each with its own migrations. */
export type DatabaseKind = "metal" | "masterdata";

export const MIGRATIONS: Record<DatabaseKind, string> = {
  metal: fileURLToPath(new URL("../../server/db/migrations", import.meta.url)),
  masterdata: fileURLToPath(new URL("../../server/masterdata/db/migrations", import.meta.url)),
};

export const RELEASES_FILE = fileURLToPath(new URL("../../server/db/releases.json", import.meta.url));

export interface Release {
  name: string;
  cut: string;
  metal: string;
  masterdata: string;
}

interface Journal {
  version: string;
  dialect: string;
  entries: { idx: number; version: string; when: number; tag: string; breakpoints: boolean }[];
}

export async function readJournal(kind: DatabaseKind): Promise<Journal> {
  return JSON.parse(await readFile(join(MIGRATIONS[kind], "meta", "_journal.json"), "utf8")) as Journal;
}

interface ReleasesFile {
  releases: Release[];
  exceptions: AdditivityException[];
}

const readReleasesFile = async () => JSON.parse(await readFile(RELEASES_FILE, "utf8")) as ReleasesFile;

/** The releases of server/db/releases.json, oldest first. */
export async function readReleases(): Promise<Release[]> {
  return (await readReleasesFile()).releases;
}

/** The reviewed exceptions to the additivity rule. */
export async function readExceptions(): Promise<AdditivityException[]> {
  return (await readReleasesFile()).exceptions ?? [];
}

/** The newest release: the one the current code must upgrade from and run beside. */
export async function previousRelease(): Promise<Release> {
  const releases = await readReleases();
  const last = releases.at(-1);
  if (!last) throw new Error(`${RELEASES_FILE} names no release`);
  return last;
}

/** The migrations of `kind` up to and including `lastOfRelease`: the release's schema. */
export async function migrationsUpTo(kind: DatabaseKind, lastOfRelease: string): Promise<{ tag: string; sql: string }[]> {
  const journal = await readJournal(kind);
  const at = journal.entries.findIndex((e) => e.tag === lastOfRelease);
  if (at === -1) throw new Error(`${kind} has no migration ${lastOfRelease}`);
  return Promise.all(journal.entries.slice(0, at + 1).map(async (e) => ({ tag: e.tag, sql: await readFile(join(MIGRATIONS[kind], `${e.tag}.sql`), "utf8") })));
}

/** The migrations of `kind` after `lastOfRelease`, in order: what an upgrade from that release applies. */
export async function migrationsAfter(kind: DatabaseKind, lastOfRelease: string): Promise<{ tag: string; sql: string }[]> {
  const journal = await readJournal(kind);
  const at = journal.entries.findIndex((e) => e.tag === lastOfRelease);
  if (at === -1) throw new Error(`${kind} has no migration ${lastOfRelease}`);
  return Promise.all(journal.entries.slice(at + 1).map(async (e) => ({ tag: e.tag, sql: await readFile(join(MIGRATIONS[kind], `${e.tag}.sql`), "utf8") })));
}

/**
 * Migrates the database at `url` to the schema of a release: the migrations
 * of `kind` up to and including `lastOfRelease`, applied by the same drizzle
 * migrator the server runs (so that the server's own migrate step later
 * continues from there, as it would on the release's database).
 */
export async function migrateTo(kind: DatabaseKind, url: string, lastOfRelease: string): Promise<void> {
  const journal = await readJournal(kind);
  const at = journal.entries.findIndex((e) => e.tag === lastOfRelease);
  if (at === -1) throw new Error(`${kind} has no migration ${lastOfRelease}`);
  const dir = await mkdtemp(join(tmpdir(), `metal-release-${kind}-`));
  try {
    const entries = journal.entries.slice(0, at + 1);
    await cp(join(MIGRATIONS[kind], "meta"), join(dir, "meta"), { recursive: true });
    await writeFile(join(dir, "meta", "_journal.json"), JSON.stringify({ ...journal, entries }));
    for (const e of entries) await cp(join(MIGRATIONS[kind], `${e.tag}.sql`), join(dir, `${e.tag}.sql`));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await migrate(drizzle({ client }), { migrationsFolder: dir });
    } finally {
      await client.end();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
