import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { pipeline } from "node:stream/promises";
import { type DatabaseFacts, inspectPostgres, knownMigrations, loadPglite, MIGRATION_LOCK_KEYS, pgliteDirInUse, pgliteVersion, withAdvisoryLocks } from "../db/backup-io.js";
import type { Logger } from "../logger.js";
import { type BackupKeys, decryptingStream, keyCheck, manifestMac, sameHex } from "./crypto.js";
import { pgRestore } from "./engines.js";
import { DATABASE_NAMES, type DatabaseName, type Manifest, ManifestError, macInput, migrationMismatch, type PartEntry, parseManifest } from "./manifest.js";
import type { BackupSettings, DatabaseLocation } from "./settings.js";
import { type Store, StoreError, sha256OfFile } from "./store.js";

/** A backup that must not be restored, or a target that must not be restored into: the message says why. */
export class RestoreRefused extends Error {}

export interface VerifiedBackup {
  store: Store;
  manifest: Manifest;
  /** Each part as a local file, checked against the manifest. */
  files: Record<DatabaseName, string>;
}

/**
 * Checks a backup completely without touching any database: the manifest
 * (and, encrypted, the key and the manifest's MAC), every part's presence,
 * size and SHA-256, that encrypted parts decrypt and authenticate, and that
 * this release knows the schema. Parts from object storage are downloaded
 * into `scratch` on the way.
 */
export async function verifyBackup(store: Store, id: string, keys: BackupKeys | undefined, scratch: string): Promise<VerifiedBackup> {
  const where = `backup ${id} in ${store.name}`;
  const text = await store.readManifest(id).catch((err: unknown) => Promise.reject(err instanceof StoreError ? new RestoreRefused(`${where}: ${err.message}`) : err));
  if (text === undefined) throw new RestoreRefused(`${where} is incomplete: it has no manifest (it was cut off while being written, or is being written now)`);
  let manifest: Manifest;
  try {
    manifest = parseManifest(text, id);
  } catch (err) {
    if (err instanceof ManifestError) throw new RestoreRefused(`${where}: ${err.message}`);
    throw err;
  }
  // With a key set, an unencrypted backup is refused: anyone who can write to the store could have planted it (no MAC covers it).
  if (keys && !manifest.encryption) {
    throw new RestoreRefused(`${where} is not encrypted, but METAL_BACKUP_KEY_FILE is set: refused (anyone who can write to the store could have made it); unset the key to restore it`);
  }
  if (manifest.encryption) {
    if (!keys) throw new RestoreRefused(`${where} is encrypted: set METAL_BACKUP_KEY_FILE to the key it was made with`);
    if (!sameHex(manifest.encryption.keyCheck, keyCheck(keys))) throw new RestoreRefused(`${where} was encrypted with another key: METAL_BACKUP_KEY_FILE holds the wrong key`);
    if (!sameHex(manifest.mac ?? "", manifestMac(keys, macInput(manifest)))) throw new RestoreRefused(`${where}: the manifest was altered (its MAC does not match)`);
  }
  const files = {} as Record<DatabaseName, string>;
  for (const part of manifest.parts) {
    const path = await store.fetchPart(id, part.file, scratch, part.size).catch((err: unknown) => Promise.reject(err instanceof StoreError ? new RestoreRefused(`${where}: ${err.message}`) : err));
    if (path === undefined) throw new RestoreRefused(`${where} is missing its part ${part.file}: the backup is partial`);
    const size = (await stat(path)).size;
    if (size !== part.size) throw new RestoreRefused(`${where}: ${part.file} is ${size} bytes, the manifest says ${part.size} (truncated or damaged)`);
    if ((await sha256OfFile(path)) !== part.sha256) throw new RestoreRefused(`${where}: ${part.file} does not match its sha256 in the manifest (damaged)`);
    if (manifest.encryption && keys) {
      try {
        await pipeline(await decryptingStream(keys, id, part.file, path), new Writable({ write: (_c, _e, done) => done() }));
      } catch (err) {
        throw new RestoreRefused(`${where}: ${(err as Error).message}`);
      }
    }
    const mismatch = migrationMismatch(part, knownMigrations(part.database));
    if (mismatch) throw new RestoreRefused(`${where}: ${mismatch}`);
    files[part.database] = path;
  }
  return { store, manifest, files };
}

/** What a database holds now: "empty", or why it is not. */
async function contentOf(name: DatabaseName, loc: DatabaseLocation): Promise<string | undefined> {
  if (loc.engine === "pglite") return pgliteDirInUse(loc.dir) ? `the embedded ${name} database in ${loc.dir} exists` : undefined;
  const { tables } = await inspectPostgres(loc.url).catch((err: unknown) => Promise.reject(new RestoreRefused(`the ${name} database: ${(err as Error).message}`)));
  return tables > 0 ? `the ${name} database holds ${tables} tables` : undefined;
}

/** Undefined when both databases are empty, else why not. */
export async function targetsNotEmpty(settings: BackupSettings): Promise<string | undefined> {
  const held: string[] = [];
  for (const name of DATABASE_NAMES) {
    const why = await contentOf(name, settings.databases[name]);
    if (why) held.push(why);
  }
  return held.length > 0 ? held.join("; ") : undefined;
}

const plainPart = (v: VerifiedBackup, part: PartEntry, keys: BackupKeys | undefined) =>
  v.manifest.encryption && keys ? decryptingStream(keys, v.manifest.id, part.file, v.files[part.database]) : Promise.resolve(createReadStream(v.files[part.database]));

/** Restores a verified backup into the databases. `force`: replace what they hold (see restoreBackup). */
async function load(v: VerifiedBackup, settings: BackupSettings, keys: BackupKeys | undefined, force: boolean, log: Logger): Promise<void> {
  for (const part of v.manifest.parts) {
    const loc = settings.databases[part.database];
    if (loc.engine !== part.engine) {
      throw new RestoreRefused(
        `backup ${v.manifest.id}: its ${part.database} part is a ${part.engine} backup, the ${part.database} database here is ${loc.engine === "postgres" ? "PostgreSQL" : "embedded (PGlite)"}`,
      );
    }
  }
  for (const part of v.manifest.parts) {
    const loc = settings.databases[part.database];
    // Checked again right before writing: a database that got data since the first check (metal-api started meanwhile) is not replaced without --force.
    const now = force ? undefined : await contentOf(part.database, loc);
    if (now) throw new RestoreRefused(`${now}: it got data while the backup was verified; nothing of it was replaced (--force replaces it)`);
    let facts: DatabaseFacts;
    if (loc.engine === "postgres") {
      await pgRestore(loc.url, await plainPart(v, part, keys), force);
      facts = await inspectPostgres(loc.url);
    } else {
      if (pgliteDirInUse(loc.dir)) {
        // Only with --force (checked before): the old directory is kept aside, not deleted.
        const aside = `${loc.dir}.before-restore-${v.manifest.id}`;
        await rename(loc.dir, aside);
        log.warn({ database: part.database, kept: aside }, `the embedded ${part.database} database was moved to ${aside}`);
      } else await rm(loc.dir, { recursive: true, force: true });
      const image = new Blob([await buffer(await plainPart(v, part, keys))]);
      try {
        facts = await loadPglite(loc.dir, image);
      } catch (err) {
        throw new Error(`PGlite could not open the restored ${part.database} database (backup: ${part.serverVersion}; this is PGlite ${pgliteVersion()}): ${(err as Error).message}`);
      }
    }
    // What the database now holds, against what the manifest says was dumped (--force may leave tables of its own beside them).
    if (facts.tables < part.tables || facts.migrations.count !== part.migrations.count) {
      throw new Error(`the restored ${part.database} database holds ${facts.tables} tables and ${facts.migrations.count} migrations, the backup had ${part.tables} and ${part.migrations.count}`);
    }
    log.info({ backup: v.manifest.id, database: part.database, tables: part.tables }, `restored the ${part.database} database from backup ${v.manifest.id}`);
  }
}

/** The complete backups of all stores, newest first (the same id in two stores: the first store's, a directory before S3). */
export async function newestFirst(stores: Store[]): Promise<{ store: Store; id: string }[]> {
  const seen = new Map<string, Store>();
  for (const store of stores) {
    for (const b of await store.list()) if (b.complete && !seen.has(b.id)) seen.set(b.id, store);
  }
  return [...seen].sort(([a], [b]) => (a < b ? 1 : -1)).map(([id, store]) => ({ id, store }));
}

async function withScratch<T>(settings: BackupSettings, fn: (dir: string) => Promise<T>): Promise<T> {
  const base = settings.scratchDir ?? tmpdir();
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, "metal-restore-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface RestoreOptions {
  settings: BackupSettings;
  stores: Store[];
  keys: BackupKeys | undefined;
  log: Logger;
  /** The backup to restore; undefined: the newest complete one. */
  id?: string;
  /** Restore into databases that hold data: PostgreSQL objects of the backup are dropped and recreated, PGlite directories moved aside. */
  force?: boolean;
}

/**
 * Restores one backup into both databases. Refused, with nothing changed,
 * when a database is not empty (without `force`) or the backup does not
 * verify completely; checks come before the first write.
 */
export async function restoreBackup(o: RestoreOptions): Promise<Manifest> {
  if (o.stores.length === 0) throw new RestoreRefused("no backup source: set METAL_BACKUP_DIR and/or METAL_BACKUP_S3_ENDPOINT");
  const held = await targetsNotEmpty(o.settings);
  if (held && !o.force) throw new RestoreRefused(`${held}: restore goes into empty databases only (--force replaces their contents)`);
  if (held) o.log.warn({ held }, `--force: restoring over existing data (${held}); what the backup holds replaces it`);
  let candidate: { store: Store; id: string } | undefined;
  if (o.id) {
    for (const store of o.stores) {
      if ((await store.list()).some((b) => b.id === o.id)) {
        candidate = { store, id: o.id };
        break;
      }
    }
    if (!candidate) throw new RestoreRefused(`there is no backup ${o.id} in ${o.stores.map((s) => s.name).join(" or ")}`);
  } else {
    candidate = (await newestFirst(o.stores))[0];
    if (!candidate) throw new RestoreRefused(`there is no complete backup in ${o.stores.map((s) => s.name).join(" or ")}`);
  }
  const c = candidate;
  // Holding metal-api's migration locks: a replica starting meanwhile waits, then migrates what was restored, instead of racing it.
  return withAdvisoryLocks(migrationLocks(o.settings), () =>
    withScratch(o.settings, async (scratch) => {
      const verified = await verifyBackup(c.store, c.id, o.keys, scratch);
      await load(verified, o.settings, o.keys, o.force ?? false, o.log);
      return verified.manifest;
    }),
  );
}

/** The migration locks of the PostgreSQL databases (PGlite ones have none: one process opens them). */
const migrationLocks = (settings: BackupSettings) =>
  DATABASE_NAMES.flatMap((name) => {
    const loc = settings.databases[name];
    return loc.engine === "postgres" ? [{ url: loc.url, key: MIGRATION_LOCK_KEYS[name] }] : [];
  });

/** What restoreIfEmpty did. */
export type OnStartOutcome = { restored: Manifest } | { skipped: string };

/**
 * Restore-on-start: when both databases are empty and a backup exists,
 * restores the newest one that verifies (a damaged newest one is logged and
 * the next older tried). Databases that hold data are left alone. Holds the
 * migration locks of PostgreSQL databases meanwhile, so that replicas
 * starting at the same time wait and then find the databases restored.
 * Fails when backups exist but none verifies: starting empty then would
 * hide the loss (set METAL_RESTORE_ON_START=false to start empty on purpose).
 */
export async function restoreIfEmpty(o: Omit<RestoreOptions, "id" | "force">): Promise<OnStartOutcome> {
  return withAdvisoryLocks(migrationLocks(o.settings), async () => {
    const states = await Promise.all(DATABASE_NAMES.map((name) => contentOf(name, o.settings.databases[name])));
    if (states.some((s) => s !== undefined)) {
      const why = states.filter(Boolean).join("; ");
      if (states.some((s) => s === undefined)) o.log.warn({ held: why }, `restore on start: one database is empty and the other is not (${why}); nothing restored`);
      return { skipped: `databases hold data (${why})` };
    }
    const backups = await newestFirst(o.stores);
    if (backups.length === 0) return { skipped: `no backup in ${o.stores.map((s) => s.name).join(" or ") || "(no backup target configured)"}` };
    const reasons: string[] = [];
    for (const b of backups) {
      try {
        const manifest = await withScratch(o.settings, async (scratch) => {
          const verified = await verifyBackup(b.store, b.id, o.keys, scratch);
          await load(verified, o.settings, o.keys, false, o.log);
          return verified.manifest;
        });
        return { restored: manifest };
      } catch (err) {
        if (!(err instanceof RestoreRefused)) throw err;
        reasons.push(err.message);
        o.log.warn({ backup: b.id, store: b.store.name, reason: err.message }, `restore on start: skipping backup ${b.id}: ${err.message}`);
      }
    }
    throw new RestoreRefused(`restore on start: no backup verifies (${reasons.join("; ")})`);
  });
}
