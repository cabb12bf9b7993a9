import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { readSettings, SettingsError } from "../../client/settings.js";
import type { RetentionPolicy } from "./retention.js";

/** Each setting is an environment variable and the matching `--flag`; secrets are environment variables or files only (see readSecret). */
export const BACKUP_SETTINGS = {
  dataDir: { env: "METAL_DATA_DIR", flag: "data-dir", fallback: "./.metal" },
  databaseUrl: { env: "DATABASE_URL", flag: "database-url", optional: true },
  masterdataDatabaseUrl: { env: "MASTERDATA_DATABASE_URL", flag: "masterdata-database-url", optional: true },
  dir: { env: "METAL_BACKUP_DIR", flag: "dir", optional: true },
  s3Endpoint: { env: "METAL_BACKUP_S3_ENDPOINT", flag: "s3-endpoint", optional: true },
  s3Bucket: { env: "METAL_BACKUP_S3_BUCKET", flag: "s3-bucket", optional: true },
  s3Prefix: { env: "METAL_BACKUP_S3_PREFIX", flag: "s3-prefix", fallback: "metal/" },
  s3Region: { env: "METAL_BACKUP_S3_REGION", flag: "s3-region", fallback: "us-east-1" },
  s3AllowHttp: { env: "METAL_BACKUP_S3_ALLOW_HTTP", flag: "s3-allow-http", fallback: "false" },
  keyFile: { env: "METAL_BACKUP_KEY_FILE", flag: "key-file", optional: true },
  interval: { env: "METAL_BACKUP_INTERVAL", flag: "interval", fallback: "1h" },
  keep: { env: "METAL_BACKUP_KEEP", flag: "keep", fallback: "24" },
  maxAge: { env: "METAL_BACKUP_MAX_AGE", flag: "max-age", fallback: "0" },
  scratchDir: { env: "METAL_BACKUP_SCRATCH_DIR", flag: "scratch-dir", optional: true },
  logLevel: { env: "LOG_LEVEL", flag: "log-level", fallback: "info" },
} as const;

export interface S3Settings {
  endpoint: string;
  bucket: string;
  prefix: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Where the two databases are: a PostgreSQL URL each, or PGlite data directories under METAL_DATA_DIR (as metal-api opens them). */
export type DatabaseLocation = { engine: "postgres"; url: string } | { engine: "pglite"; dir: string };

export interface BackupSettings {
  databases: { metal: DatabaseLocation; masterdata: DatabaseLocation };
  dir: string | undefined;
  s3: S3Settings | undefined;
  keyFile: string | undefined;
  intervalMs: number;
  retention: RetentionPolicy;
  /** Where S3 downloads and uploads are staged (default: the system's temporary directory). */
  scratchDir: string | undefined;
  logLevel: string;
}

/** A secret from VAR or from the file VAR_FILE names (trimmed); never from a flag, which `ps` shows. */
export function readSecret(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) {
    try {
      return readFileSync(file, "utf8").trim();
    } catch (err) {
      throw new SettingsError(`$${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }
  return env[name] || undefined;
}

/** localhost, 127.0.0.0/8 or ::1: plain http there does not cross a network. */
export const isLoopback = (hostname: string): boolean => hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);

/** Failed unfinished backups are removed after this (one being written is never this old). */
const PARTIAL_GRACE_MS = 24 * 3_600_000;

export function loadBackupSettings(env: NodeJS.ProcessEnv, argv: readonly string[]): BackupSettings {
  const r = readSettings(BACKUP_SETTINGS, env, argv);
  const dataDir = resolve(r.get("dataDir"));
  const location = (url: string | undefined, dir: string): DatabaseLocation => (url ? { engine: "postgres", url } : { engine: "pglite", dir: join(dataDir, dir) });
  let s3: S3Settings | undefined;
  const endpoint = r.optional("s3Endpoint");
  if (endpoint !== undefined) {
    r.url("s3Endpoint", ["http:", "https:"]);
    // Plain http outside this host sends backups and signed requests over the network unprotected: only when asked for.
    if (new URL(endpoint).protocol === "http:" && !isLoopback(new URL(endpoint).hostname) && !r.bool("s3AllowHttp")) {
      throw new SettingsError("--s3-endpoint ($METAL_BACKUP_S3_ENDPOINT) is plain http to another host: use https, or set --s3-allow-http ($METAL_BACKUP_S3_ALLOW_HTTP=true) on a network you trust");
    }
    const bucket = r.optional("s3Bucket");
    if (!bucket) throw new SettingsError("--s3-bucket ($METAL_BACKUP_S3_BUCKET) is required with an S3 endpoint");
    const accessKeyId = readSecret(env, "METAL_BACKUP_S3_ACCESS_KEY");
    const secretAccessKey = readSecret(env, "METAL_BACKUP_S3_SECRET_KEY");
    if (!accessKeyId || !secretAccessKey) {
      throw new SettingsError("an S3 endpoint needs $METAL_BACKUP_S3_ACCESS_KEY and $METAL_BACKUP_S3_SECRET_KEY (or the files their _FILE variables name)");
    }
    const prefix = r.get("s3Prefix");
    if (prefix.startsWith("/") || prefix.includes("..") || prefix.length > 512) throw new SettingsError("--s3-prefix ($METAL_BACKUP_S3_PREFIX) must be a relative key prefix");
    s3 = { endpoint, bucket, prefix, region: r.get("s3Region"), accessKeyId, secretAccessKey };
  }
  const dir = r.optional("dir");
  const maxAgeMs = r.duration("maxAge", { allowZero: true });
  return {
    databases: { metal: location(r.optional("databaseUrl"), "metal-db"), masterdata: location(r.optional("masterdataDatabaseUrl"), "masterdata-db") },
    dir: dir === undefined ? undefined : resolve(dir),
    s3,
    keyFile: r.optional("keyFile"),
    intervalMs: r.duration("interval"),
    retention: { keep: r.int("keep", 0, 100_000), maxAgeMs: maxAgeMs === 0 ? undefined : maxAgeMs, partialGraceMs: PARTIAL_GRACE_MS },
    scratchDir: r.optional("scratchDir"),
    logLevel: r.get("logLevel"),
  };
}
