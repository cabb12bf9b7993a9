import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { TEST_DATABASE_URL } from "../helpers/postgres.js";
import { scaled } from "../helpers/timeouts.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/metal-backup.js with exactly `env` (plus PATH and HOME), as an operator would. */
export function metalBackup(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, "bin", "metal-backup.js"), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", LOG_LEVEL: "info", ...env }, timeout: scaled(120_000), maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Every row of every table (and every sequence's position) of a database, in a stable order: equal snapshots mean equal contents. */
export async function snapshot(url: string): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = (
      await client.query<{ t: string }>("select format('%I.%I', schemaname, tablename) as t from pg_tables where schemaname not in ('pg_catalog', 'information_schema') order by schemaname, tablename")
    ).rows.map((r) => r.t);
    const out: Record<string, unknown> = {};
    for (const t of tables) {
      out[t] = (await client.query(`select coalesce(json_agg(x order by x::text), '[]'::json) as rows from ${t} x`)).rows[0].rows;
    }
    out["(sequences)"] = (await client.query("select schemaname, sequencename, last_value from pg_sequences order by 1, 2")).rows;
    return out;
  } finally {
    await client.end();
  }
}

/** Rows of one table, for the checks that name what matters. */
export async function rows(url: string, table: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(`select * from ${table}`)).rows;
  } finally {
    await client.end();
  }
}

export async function tableCount(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ n: number }>("select count(*)::int as n from pg_tables where schemaname not in ('pg_catalog', 'information_schema')")).rows[0]!.n;
  } finally {
    await client.end();
  }
}

/** Destroys a database and makes an empty one of the same name: what a lost database server gives back. */
export async function recreateEmpty(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`drop database if exists "${name}" with (force)`);
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
}

export interface TestS3 {
  endpoint: string;
  bucket: string;
  env: Record<string, string>;
  stop(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

/** An S3-compatible server (s3rver, signature checking on) on a free port with an empty bucket. */
export async function startS3(prefix = "metal/"): Promise<TestS3> {
  const S3rver = createRequire(import.meta.url)("s3rver") as new (opts: Record<string, unknown>) => S3rverInstance;
  const dir = await mkdtemp(join(tmpdir(), "metal-s3rver-"));
  const bucket = "metal-backups";
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    // s3rver's one account.
    env: {
      METAL_BACKUP_S3_ENDPOINT: endpoint,
      METAL_BACKUP_S3_BUCKET: bucket,
      METAL_BACKUP_S3_PREFIX: prefix,
      METAL_BACKUP_S3_ACCESS_KEY: "S3RVER",
      METAL_BACKUP_S3_SECRET_KEY: "S3RVER",
    },
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
