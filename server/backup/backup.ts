import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, type Transform } from "node:stream";
import { type DatabaseFacts, inspectPglite, inspectPostgres, pgliteDirInUse, pgliteOpen } from "../db/backup-io.js";
import type { Logger } from "../logger.js";
import { readVersion } from "../version.js";
import { type BackupKeys, encryptingTransform, keyCheck, manifestMac, sameHex } from "./crypto.js";
import { blobStream, pgDump, writePart } from "./engines.js";
import { backupId, type DatabaseName, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest, macInput, PART_FORMAT, type PartEntry, parseManifest, partFile, timeOfId } from "./manifest.js";
import { toPrune } from "./retention.js";
import type { BackupSettings, DatabaseLocation } from "./settings.js";
import { DirStore, type Store } from "./store.js";

export class BackupError extends Error {}

export interface BackupOptions {
  settings: BackupSettings;
  stores: Store[];
  keys: BackupKeys | undefined;
  log: Logger;
  now?: () => Date;
  /** PGlite: back up a data directory that looks open (metal-api running, or stopped uncleanly). */
  force?: boolean;
}

/**
 * The order of the dumps: metal first, masterdata second. Each is one
 * snapshot of its database; the two are taken one after the other. What
 * metal references in masterdata (projects, tenants) existed before the
 * metal snapshot, so the later masterdata snapshot has it, unless it was
 * deleted in between (docs/backup.md).
 */
const ORDER: readonly DatabaseName[] = ["metal", "masterdata"];

/** Dumps one database into `path`; returns what the manifest says about the part. */
async function dumpOne(name: DatabaseName, loc: DatabaseLocation, path: string, transforms: Transform[], force: boolean): Promise<Omit<PartEntry, "file">> {
  let facts: DatabaseFacts;
  let written: { size: number; sha256: string };
  if (loc.engine === "postgres") {
    facts = await inspectPostgres(loc.url).catch((err: unknown) => Promise.reject(new BackupError(`the ${name} database: ${(err as Error).message}`)));
    if (facts.tables === 0) throw new BackupError(`the ${name} database has no tables: nothing to back up (is it the right database? has metal-api started on it?)`);
    const out = new PassThrough();
    const [, w] = await Promise.all([pgDump(loc.url, out).catch((err: unknown) => (out.destroy(err as Error), Promise.reject(err))), writePart(out, transforms, path)]);
    written = w;
  } else {
    if (!pgliteDirInUse(loc.dir)) throw new BackupError(`there is no ${name} database in ${loc.dir}: nothing to back up`);
    if (pgliteOpen(loc.dir) && !force) {
      throw new BackupError(
        `the embedded ${name} database in ${loc.dir} is open (metal-api runs on it, or stopped uncleanly): stop metal-api first; --force backs up what is on disk (consistent only if nothing writes)`,
      );
    }
    const { facts: f, image, pgliteVersion } = await inspectPglite(loc.dir, true);
    facts = { ...f, serverVersion: `${f.serverVersion} (PGlite ${pgliteVersion})` };
    written = await writePart(blobStream(image!), transforms, path);
  }
  return { database: name, engine: loc.engine, format: PART_FORMAT[loc.engine], ...written, migrations: facts.migrations, tables: facts.tables, serverVersion: facts.serverVersion };
}

/**
 * Makes one backup of both databases and stores it in every store: parts
 * first, manifest last. Returns its manifest. A store that fails does not
 * stop the others; the error names every store that failed.
 */
export async function createBackup(o: BackupOptions): Promise<Manifest> {
  if (o.stores.length === 0) throw new BackupError("no backup target: set METAL_BACKUP_DIR and/or METAL_BACKUP_S3_ENDPOINT");
  const now = (o.now ?? (() => new Date()))();
  const id = backupId(now, randomBytes(2).toString("hex"));
  const started = Date.now();
  const dirStore = o.stores.find((s): s is DirStore => s instanceof DirStore);
  // Staged where the directory store keeps it (publishing is then a rename), else in a scratch directory.
  let staging: string;
  if (dirStore) {
    staging = dirStore.stagingDir(id);
    await mkdir(dirStore.dir, { recursive: true, mode: 0o700 });
    await mkdir(staging, { mode: 0o700 });
  } else {
    const scratch = o.settings.scratchDir ?? tmpdir();
    await mkdir(scratch, { recursive: true });
    staging = await mkdtemp(join(scratch, "metal-backup-"));
  }
  try {
    const parts: PartEntry[] = [];
    for (const name of ORDER) {
      const file = partFile(name, o.settings.databases[name].engine, o.keys !== undefined);
      const transforms = o.keys ? [encryptingTransform(o.keys, id, file)] : [];
      const part = await dumpOne(name, o.settings.databases[name], join(staging, file), transforms, o.force ?? false);
      parts.push({ ...part, file });
    }
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      id,
      createdAt: now.toISOString(),
      producer: readVersion().version,
      encryption: o.keys ? { algorithm: "AES-256-GCM", kdf: "HKDF-SHA256", keyCheck: keyCheck(o.keys) } : null,
      parts,
    };
    if (o.keys) manifest.mac = manifestMac(o.keys, macInput(manifest));
    const text = `${JSON.stringify(manifest, null, 2)}\n`;
    // The directory store last: its publish moves the staging directory the others upload from.
    const ordered = [...o.stores.filter((s) => s !== dirStore), ...(dirStore ? [dirStore] : [])];
    const failed: string[] = [];
    for (const store of ordered) {
      try {
        await store.publish(id, staging, parts, text);
        o.log.info({ backup: id, store: store.name }, `backup ${id} stored in ${store.name}`);
      } catch (err) {
        failed.push(`${store.name}: ${(err as Error).message}`);
        o.log.error({ backup: id, store: store.name, err: (err as Error).message }, `backup ${id} could not be stored in ${store.name}`);
      }
    }
    if (failed.length > 0) throw new BackupError(`backup ${id} was not stored in ${failed.join("; ")}`);
    o.log.info({ backup: id, ms: Date.now() - started, encrypted: o.keys !== undefined, parts: parts.map((p) => ({ database: p.database, size: p.size, tables: p.tables })) }, `backup ${id} done`);
    return manifest;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Whether a backup with a manifest counts as one of ours for retention: its
 * manifest parses and, with a key, is encrypted with it and its MAC holds.
 * Anything else (planted by whoever can write to the store, or damaged)
 * neither counts towards --keep nor is the newest to keep: otherwise a few
 * planted manifests with newer ids would make retention delete every real
 * backup. Retention leaves it alone: it may be an operator's (an older
 * unencrypted backup, after a key was set), and what retention cannot vouch
 * for it does not delete.
 */
async function countsAsComplete(store: Store, id: string, keys: BackupKeys | undefined): Promise<boolean> {
  try {
    const text = await store.readManifest(id);
    if (text === undefined) return false;
    const m = parseManifest(text, id);
    if (!keys) return true;
    return m.encryption !== null && sameHex(m.encryption.keyCheck, keyCheck(keys)) && sameHex(m.mac ?? "", manifestMac(keys, macInput(m)));
  } catch {
    return false;
  }
}

/** Applies the retention policy to every store; returns the ids removed per store. */
export async function prune(o: { settings: BackupSettings; stores: Store[]; keys: BackupKeys | undefined; log: Logger; now?: () => Date }): Promise<Record<string, string[]>> {
  const removed: Record<string, string[]> = {};
  for (const store of o.stores) {
    const listed: { id: string; complete: boolean; time: Date }[] = [];
    for (const b of await store.list()) {
      if (b.complete && !(await countsAsComplete(store, b.id, o.keys))) {
        o.log.warn({ backup: b.id, store: store.name }, `backup ${b.id} in ${store.name}: its manifest is not one of ours (damaged, planted, or of another key): retention neither counts nor removes it`);
        continue;
      }
      listed.push({ id: b.id, complete: b.complete, time: timeOfId(b.id)! });
    }
    const doomed = toPrune(listed, o.settings.retention, (o.now ?? (() => new Date()))());
    for (const id of doomed) {
      await store.remove(id);
      o.log.info({ backup: id, store: store.name }, `backup ${id} removed from ${store.name} (retention)`);
    }
    removed[store.name] = doomed;
  }
  return removed;
}
