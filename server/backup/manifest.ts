/**
 * The manifest of a backup: what it holds and how to check it. Pure: no I/O.
 * A backup is a set of files under one id (a directory, or objects under a
 * common key prefix): one part per database and `manifest.json`, written
 * last, so a backup without a manifest is one that did not finish.
 */

export const MANIFEST_FORMAT = "metal-backup";
export const MANIFEST_VERSION = 1;
export const MANIFEST_NAME = "manifest.json";
/** A manifest is a few kilobytes; anything much larger is not one of ours. */
export const MAX_MANIFEST_BYTES = 64 * 1024;

export type DatabaseName = "metal" | "masterdata";
export const DATABASE_NAMES: readonly DatabaseName[] = ["metal", "masterdata"];

/** postgres: a pg_dump archive in custom format; pglite: PGlite's own dump of its data directory (a gzipped tar). */
export type Engine = "postgres" | "pglite";
export const PART_FORMAT: Record<Engine, string> = { postgres: "pg_dump-custom", pglite: "pglite-datadir-tgz" };

/** How far a database's schema was migrated: drizzle's migration journal as the database records it. */
export interface MigrationLevel {
  /** Migrations applied. */
  count: number;
  /** `created_at` (the journal's `when`) of the newest one; 0 when none. */
  last: number;
}

export interface PartEntry {
  database: DatabaseName;
  engine: Engine;
  format: string;
  /** File (object) name within the backup. */
  file: string;
  /** Bytes as stored (after encryption when encrypted). */
  size: number;
  /** Hex SHA-256 of the stored bytes. */
  sha256: string;
  migrations: MigrationLevel;
  /** Tables in the database when it was dumped (every schema but PostgreSQL's own). */
  tables: number;
  /** PostgreSQL's server_version (PGlite's too). */
  serverVersion: string;
}

export interface EncryptionInfo {
  algorithm: "AES-256-GCM";
  kdf: "HKDF-SHA256";
  /** Tells a wrong key from a damaged backup before anything is decrypted (an HMAC of a constant; reveals nothing). */
  keyCheck: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  id: string;
  /** ISO 8601, UTC. */
  createdAt: string;
  /** Release of the metal-backup that wrote it. */
  producer: string;
  encryption: EncryptionInfo | null;
  parts: PartEntry[];
  /** Encrypted backups: HMAC-SHA256 over the rest of the manifest (canonical JSON) with a key derived from the backup key. */
  mac?: string;
}

/** Backup ids sort by time: 20261205T191632Z-3fa9 (UTC, second resolution, 4 random hex digits). */
const ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-[0-9a-f]{4}$/;

export function backupId(now: Date, random: string): string {
  if (!/^[0-9a-f]{4}$/.test(random)) throw new Error("the random part of a backup id is 4 hex digits");
  const iso = now.toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z-${random}`;
}

export const isBackupId = (text: string): boolean => ID.test(text);

/** When the backup with this id was started (from the id alone: partial backups have no manifest to ask). */
export function timeOfId(id: string): Date | undefined {
  const m = ID.exec(id);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : undefined;
}

export const partFile = (database: DatabaseName, engine: Engine, encrypted: boolean): string => `${database}.${engine === "postgres" ? "dump" : "tar.gz"}${encrypted ? ".enc" : ""}`;

/** JSON with object keys sorted at every level: the bytes a MAC is computed over. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The manifest without its MAC, canonically: what the MAC covers. */
export const macInput = (m: Manifest): string => canonicalJson({ ...m, mac: undefined });

export class ManifestError extends Error {}

const HEX64 = /^[0-9a-f]{64}$/;

/** Free text of a manifest (list prints it, messages quote it): short printable ASCII only, no terminal escapes or line breaks. */
const printable = (v: unknown): v is string => typeof v === "string" && /^[\x20-\x7e]{1,200}$/.test(v);

/**
 * Parses a manifest read from storage. Everything in it is checked, since
 * file names and sizes steer what restore reads: a manifest that is not
 * exactly ours is refused with the reason.
 */
export function parseManifest(text: string, expectedId: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ManifestError("the manifest is not JSON (damaged or truncated)");
  }
  const o = raw as Record<string, unknown>;
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw new ManifestError("the manifest is not a JSON object");
  if (o.format !== MANIFEST_FORMAT) throw new ManifestError("the manifest is not a metal-backup manifest");
  if (o.version !== MANIFEST_VERSION) throw new ManifestError(`manifest version ${String(o.version)} is not supported (this metal-backup reads version ${MANIFEST_VERSION})`);
  if (o.id !== expectedId) throw new ManifestError(`the manifest names backup ${JSON.stringify(o.id)}, not ${expectedId}`);
  if (!printable(o.createdAt) || Number.isNaN(Date.parse(o.createdAt))) throw new ManifestError("the manifest has no valid createdAt");
  if (!printable(o.producer)) throw new ManifestError("the manifest has no valid producer");
  let encryption: EncryptionInfo | null = null;
  if (o.encryption !== null) {
    const e = o.encryption as Record<string, unknown>;
    if (typeof e !== "object" || e === null || e.algorithm !== "AES-256-GCM" || e.kdf !== "HKDF-SHA256" || typeof e.keyCheck !== "string" || !/^[0-9a-f]{32}$/.test(e.keyCheck)) {
      throw new ManifestError("the manifest's encryption entry is not understood");
    }
    encryption = { algorithm: "AES-256-GCM", kdf: "HKDF-SHA256", keyCheck: e.keyCheck };
    if (typeof o.mac !== "string" || !HEX64.test(o.mac)) throw new ManifestError("the manifest of an encrypted backup has no MAC");
  }
  if (!Array.isArray(o.parts)) throw new ManifestError("the manifest lists no parts");
  const parts = o.parts.map((p) => parsePart(p, encryption !== null));
  for (const name of DATABASE_NAMES) {
    if (parts.filter((p) => p.database === name).length !== 1) throw new ManifestError(`the manifest must list exactly one part of the ${name} database`);
  }
  if (parts.length !== DATABASE_NAMES.length) throw new ManifestError("the manifest lists parts of unknown databases");
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    id: expectedId,
    createdAt: o.createdAt,
    producer: o.producer,
    encryption,
    parts,
    ...(typeof o.mac === "string" ? { mac: o.mac } : {}),
  };
}

function parsePart(raw: unknown, encrypted: boolean): PartEntry {
  const p = raw as Record<string, unknown>;
  if (p === null || typeof p !== "object") throw new ManifestError("a part entry of the manifest is not an object");
  const database = p.database;
  if (database !== "metal" && database !== "masterdata") throw new ManifestError(`unknown database ${JSON.stringify(database)} in the manifest`);
  const engine = p.engine;
  if (engine !== "postgres" && engine !== "pglite") throw new ManifestError(`unknown engine ${JSON.stringify(engine)} of the ${database} part`);
  if (p.format !== PART_FORMAT[engine]) throw new ManifestError(`unknown format ${JSON.stringify(p.format)} of the ${database} part`);
  // The file name is not taken from the manifest as written: it is the one name a part of this kind has.
  if (p.file !== partFile(database, engine, encrypted)) throw new ManifestError(`unexpected file name ${JSON.stringify(p.file)} of the ${database} part`);
  if (!Number.isSafeInteger(p.size) || (p.size as number) < 0) throw new ManifestError(`the ${database} part has no valid size`);
  if (typeof p.sha256 !== "string" || !HEX64.test(p.sha256)) throw new ManifestError(`the ${database} part has no valid sha256`);
  const m = p.migrations as Record<string, unknown> | null;
  if (!m || !Number.isSafeInteger(m.count) || !Number.isSafeInteger(m.last)) throw new ManifestError(`the ${database} part has no valid migration level`);
  if (!Number.isSafeInteger(p.tables)) throw new ManifestError(`the ${database} part has no table count`);
  if (!printable(p.serverVersion)) throw new ManifestError(`the ${database} part has no valid server version`);
  return {
    database,
    engine,
    format: p.format,
    file: p.file,
    size: p.size as number,
    sha256: p.sha256,
    migrations: { count: m.count as number, last: m.last as number },
    tables: p.tables as number,
    serverVersion: p.serverVersion,
  };
}

/** Why a backup cannot go into a database whose code knows `known` migrations; undefined when it can (an older level is migrated on start). */
export function migrationMismatch(part: PartEntry, known: MigrationLevel): string | undefined {
  if (part.migrations.count > known.count || part.migrations.last > known.last) {
    return `the ${part.database} part was made by a newer release (${part.migrations.count} migrations; this release knows ${known.count}): restore it with that release`;
  }
  return undefined;
}

export const totalSize = (m: Manifest): number => m.parts.reduce((n, p) => n + p.size, 0);
