import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { Readable, Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

/**
 * PostgreSQL's own tools as child processes: pg_dump writes a custom-format
 * archive (one snapshot of the database), pg_restore reads one. The
 * password goes to them in PGPASSWORD, never on the command line.
 */

/** A URL without its password (for the command line) and the password (for the environment). */
export function connectionOf(url: string): { dbname: string; env: Record<string, string> } {
  const u = new URL(url);
  // A password in the query (?password=) would reach the command line too: it goes to the environment like one in the userinfo.
  const password = decodeURIComponent(u.password) || (u.searchParams.get("password") ?? "");
  u.password = "";
  u.searchParams.delete("password");
  return { dbname: u.toString(), env: password ? { PGPASSWORD: password } : {} };
}

const withoutBackupSecrets = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("METAL_BACKUP_S3_")));

/** What a tool printed last, for the error: bounded. */
const STDERR_TAIL = 4096;

export class ToolError extends Error {}

/**
 * Runs a PostgreSQL tool with `stdin` fed to it and its stdout into `stdout`;
 * rejects with the tool's last error lines when it fails.
 */
export function runTool(tool: "pg_dump" | "pg_restore", args: string[], conn: { env: Record<string, string> }, io: { stdin?: Readable; stdout?: Writable }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, {
      // The tools need none of metal-backup's own secrets (S3 credentials).
      env: { ...withoutBackupSecrets(process.env), ...conn.env, PGAPPNAME: "metal-backup", PGCONNECT_TIMEOUT: process.env.PGCONNECT_TIMEOUT ?? "30" },
      stdio: [io.stdin ? "pipe" : "ignore", io.stdout ? "pipe" : "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => {
      stderr = (stderr + c.toString("utf8")).slice(-STDERR_TAIL);
    });
    let streamError: unknown;
    const piped: Promise<void>[] = [];
    if (io.stdin && child.stdin) {
      // pg_restore may stop reading early (an error): that is its exit code's story, not a second failure.
      child.stdin.on("error", () => {});
      piped.push(pipeline(io.stdin, child.stdin).catch((err: unknown) => void (streamError ??= err)));
    }
    if (io.stdout && child.stdout) piped.push(pipeline(child.stdout, io.stdout).catch((err: unknown) => void (streamError ??= err)));
    child.on("error", (err: NodeJS.ErrnoException) => {
      reject(new ToolError(err.code === "ENOENT" ? `${tool} is not installed (PostgreSQL's client tools are needed for PostgreSQL databases)` : `${tool}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      void Promise.all(piped).then(() => {
        if (code !== 0) reject(new ToolError(`${tool} failed (${signal ?? `exit ${code}`}): ${stderr.trim().split("\n").slice(-5).join(" | ") || "no message"}`));
        else if (streamError) reject(streamError instanceof Error ? streamError : new Error(String(streamError)));
        else resolve();
      });
    });
  });
}

/** Counts and hashes what passes through. */
export class Measure extends Transform {
  readonly hash = createHash("sha256");
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }
}

/**
 * Writes `source` (through `transforms`) to `path` (mode 0600) and returns
 * the size and SHA-256 of what was written.
 */
export async function writePart(source: Readable, transforms: Transform[], path: string): Promise<{ size: number; sha256: string }> {
  const measure = new Measure();
  await pipeline([source, ...transforms, measure, createWriteStream(path, { mode: 0o600 })]);
  return { size: measure.size, sha256: measure.hash.digest("hex") };
}

/** pg_dump of a whole database in custom format (compressed, one snapshot) to `out`. */
export function pgDump(url: string, out: Writable): Promise<void> {
  const conn = connectionOf(url);
  return runTool("pg_dump", ["--format=custom", "--no-password", `--dbname=${conn.dbname}`], conn, { stdout: out });
}

/**
 * pg_restore of a custom-format archive from `archive` in one transaction:
 * it fails as a whole. `clean` drops the archive's objects first (--force).
 * Ownership and grants are not restored: everything belongs to the
 * restoring role, as a database made by metal-api's migrations does.
 */
export function pgRestore(url: string, archive: Readable, clean: boolean): Promise<void> {
  const conn = connectionOf(url);
  const args = ["--format=custom", "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", "--no-password", ...(clean ? ["--clean", "--if-exists"] : []), `--dbname=${conn.dbname}`];
  return runTool("pg_restore", args, conn, { stdin: archive });
}

export const blobStream = (blob: Blob): Readable => Readable.fromWeb(blob.stream() as never);
