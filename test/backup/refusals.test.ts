import { randomBytes } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { restoreOnStartIfAsked } from "../../server/backup/on-start.js";
import { S3Client } from "../../server/backup/s3.js";
import { loadConfig } from "../../server/config.js";
import { createLogger } from "../../server/logger.js";
import { eventually } from "../helpers/eventually.js";
import { createScratchDatabase, type ScratchDatabase } from "../helpers/postgres.js";
import { metalBackup, recreateEmpty, snapshot, startS3, type TestS3, tableCount } from "./backup-helpers.js";

/**
 * metal-backup on two PostgreSQL databases, through the binary: a backup to
 * a directory and to S3 (encrypted), restores from both, and every way a
 * backup or a target is refused, each leaving the target as it was.
 */
let source: { metal: ScratchDatabase; md: ScratchDatabase };
let target: { metal: ScratchDatabase; md: ScratchDatabase };
let s3: TestS3;
let dir: string;
let env: Record<string, string>;
let id: string;
let before: { metal: Record<string, unknown>; md: Record<string, unknown> };

const into = (t: typeof target) => ({ DATABASE_URL: t.metal.url, MASTERDATA_DATABASE_URL: t.md.url });
const targetEmpty = async () => (await tableCount(target.metal.url)) === 0 && (await tableCount(target.md.url)) === 0;
/** The backup directory as another directory (a copy to damage). */
async function copyOfBackups(): Promise<string> {
  const copy = await mkdtemp(join(dir, "copy-"));
  await cp(join(dir, "backups"), copy, { recursive: true });
  return copy;
}

beforeAll(async () => {
  [source, target] = await Promise.all([
    Promise.all([createScratchDatabase("bk_src_metal", { from: "metal" }), createScratchDatabase("bk_src_md", { from: "masterdata" })]).then(([metal, md]) => ({ metal, md })),
    Promise.all([createScratchDatabase("bk_dst_metal"), createScratchDatabase("bk_dst_md")]).then(([metal, md]) => ({ metal, md })),
  ]);
  dir = await mkdtemp(join(tmpdir(), "metal-backup-test-"));
  await writeFile(join(dir, "key"), `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });
  await writeFile(join(dir, "other-key"), `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });
  s3 = await startS3();
  env = { METAL_BACKUP_DIR: join(dir, "backups"), METAL_BACKUP_KEY_FILE: join(dir, "key"), ...s3.env };
  before = { metal: await snapshot(source.metal.url), md: await snapshot(source.md.url) };
});

afterAll(async () => {
  await s3?.stop();
  for (const d of [source?.metal, source?.md, target?.metal, target?.md]) d?.dropLater();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("metal-backup on PostgreSQL", () => {
  it("backs up both databases, encrypted, to the directory and to S3", async () => {
    const r = await metalBackup(["backup"], { ...env, ...into(source) });
    expect(r.stderr).not.toMatch(/S3RVER|postgres:\/\//);
    expect(r.code, r.stderr).toBe(0);
    id = r.stdout.trim();
    const files = await readdir(join(dir, "backups", id));
    expect(files.sort()).toEqual(["manifest.json", "masterdata.dump.enc", "metal.dump.enc"]);
    const manifest = JSON.parse(await readFile(join(dir, "backups", id, "manifest.json"), "utf8"));
    expect(manifest.encryption.algorithm).toBe("AES-256-GCM");
    expect(manifest.parts.map((p: { database: string; migrations: { count: number } }) => [p.database, p.migrations.count > 0])).toEqual([
      ["metal", true],
      ["masterdata", true],
    ]);
    // Encrypted: no table name of the dump in clear.
    expect((await readFile(join(dir, "backups", id, "metal.dump.enc"))).includes("signing_keys")).toBe(false);
    const list = await metalBackup(["list"], env);
    expect(list.stdout).toMatch(new RegExp(`dir .*\\n  ${id} .* encrypted`));
    expect(list.stdout).toMatch(new RegExp(`s3 metal-backups/metal/: 1 backup\\(s\\)\\n  ${id} `));
    expect((await metalBackup(["verify", "--all"], env)).stdout).toMatch(/good/);
  });

  it("says what S3 answered to wrong credentials", async () => {
    // s3rver checks the access key id (not SigV4 signatures: those are checked against AWS's examples in units.test.ts).
    const r = await metalBackup(["list", "--from", "s3"], { ...env, METAL_BACKUP_S3_ACCESS_KEY: "NOT-AN-ACCOUNT" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/S3 GET \(bucket\): 403 InvalidAccessKeyId/);
    expect(r.stderr).not.toMatch(/S3RVER/);
  });

  it("refuses to restore into databases that hold data, and changes nothing", async () => {
    const r = await metalBackup(["restore"], { ...env, ...into(source) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the metal database holds \d+ tables; the masterdata database holds \d+ tables: restore goes into empty databases only \(--force/);
    expect(await snapshot(source.metal.url)).toEqual(before.metal);
  });

  it.each([
    ["a missing part", async (d: string) => rm(join(d, id, "masterdata.dump.enc")), /missing its part masterdata\.dump\.enc: the backup is partial/],
    ["a truncated part", async (d: string) => truncate(join(d, id, "metal.dump.enc"), 1000), /metal\.dump\.enc is 1000 bytes, the manifest says \d+ \(truncated or damaged\)/],
    [
      "a damaged part",
      async (d: string) => {
        const p = join(d, id, "metal.dump.enc");
        const b = await readFile(p);
        b[b.length >> 1] ^= 0xff;
        await writeFile(p, b);
      },
      /metal\.dump\.enc does not match its sha256 in the manifest \(damaged\)/,
    ],
    ["no manifest", async (d: string) => rm(join(d, id, "manifest.json")), /is incomplete: it has no manifest/],
    [
      "an altered manifest",
      async (d: string) => {
        const p = join(d, id, "manifest.json");
        await writeFile(p, (await readFile(p, "utf8")).replace(/"createdAt": "[^"]+"/, '"createdAt": "2020-01-01T00:00:00.000Z"'));
      },
      /the manifest was altered \(its MAC does not match\)/,
    ],
    ["a manifest that is not JSON", async (d: string) => writeFile(join(d, id, "manifest.json"), "{"), /the manifest is not JSON/],
  ])("refuses a backup with %s, before touching the databases", async (_what, damage, message) => {
    const copy = await copyOfBackups();
    await damage(copy);
    const r = await metalBackup(["restore", id], { ...env, METAL_BACKUP_DIR: copy, ...into(target), METAL_BACKUP_S3_ENDPOINT: "" });
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(await targetEmpty()).toBe(true);
    await rm(copy, { recursive: true, force: true });
  });

  it("refuses the wrong key and a missing key with a message that says so", async () => {
    const wrong = await metalBackup(["restore"], { ...env, METAL_BACKUP_KEY_FILE: join(dir, "other-key"), ...into(target) });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/was encrypted with another key: METAL_BACKUP_KEY_FILE holds the wrong key/);
    const none = await metalBackup(["restore"], { ...env, METAL_BACKUP_KEY_FILE: "", ...into(target) });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/is encrypted: set METAL_BACKUP_KEY_FILE/);
    expect(await targetEmpty()).toBe(true);
  });

  it("restores from S3 into empty databases: both identical to what was backed up", async () => {
    const r = await metalBackup(["restore", "--from", "s3"], { ...env, ...into(target) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`restored ${id}`);
    expect(await snapshot(target.metal.url)).toEqual(before.metal);
    expect(await snapshot(target.md.url)).toEqual(before.md);
  });

  it("restores over data with --force, warning that it does", async () => {
    const r = await metalBackup(["restore", "--force", "--from", "dir"], { ...env, ...into(target) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/--force: restoring over existing data \(the metal database holds \d+ tables/);
    expect(await snapshot(target.metal.url)).toEqual(before.metal);
    expect(await snapshot(target.md.url)).toEqual(before.md);
  });

  it("refuses a partial backup in S3", async () => {
    const client = new S3Client({ endpoint: s3.endpoint, bucket: s3.bucket, region: "us-east-1", credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } });
    await client.delete(`metal/${id}/masterdata.dump.enc`);
    await Promise.all([recreateEmpty(target.metal.url), recreateEmpty(target.md.url)]);
    const r = await metalBackup(["restore", id, "--from", "s3"], { ...env, ...into(target) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/backup .* in s3 metal-backups\/metal\/ is missing its part masterdata\.dump\.enc: the backup is partial/);
    expect(await targetEmpty()).toBe(true);
  });

  it("restores on start only into empty databases, the newest backup that verifies", async () => {
    // A newer backup whose part is damaged: restore on start passes over it to the good one.
    const later = await metalBackup(["backup"], { ...env, ...into(source), METAL_BACKUP_S3_ENDPOINT: "" });
    expect(later.code, later.stderr).toBe(0);
    const newer = later.stdout.trim();
    await truncate(join(dir, "backups", newer, "masterdata.dump.enc"), 10);
    const r = await metalBackup(["restore", "--if-empty", "--from", "dir"], { ...env, ...into(target) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`skipping backup ${newer}: .*truncated`));
    expect(r.stdout.trim()).toBe(`restored ${id}`);
    expect(await snapshot(target.metal.url)).toEqual(before.metal);
    const again = await metalBackup(["restore", "--if-empty"], { ...env, ...into(target) });
    expect(again.stdout).toMatch(/nothing restored: databases hold data/);
    await rm(join(dir, "backups", newer), { recursive: true, force: true });

    // metal-api's METAL_RESTORE_ON_START: the same, before it opens its databases.
    await Promise.all([recreateEmpty(target.metal.url), recreateEmpty(target.md.url)]);
    const config = loadConfig({ METAL_DATA_DIR: join(dir, "data"), ...into(target) });
    await restoreOnStartIfAsked(config, { ...env, METAL_RESTORE_ON_START: "true" }, createLogger("silent"));
    expect(await snapshot(target.md.url)).toEqual(before.md);
  });

  it("keeps the newest backups the retention says, and removes what was cut off", async () => {
    await mkdir(join(dir, "backups", ".20200101T000000Z-dead.partial"));
    const keep2 = { ...env, ...into(source), METAL_BACKUP_KEEP: "2" };
    for (let i = 0; i < 2; i++) expect((await metalBackup(["backup"], keep2)).code).toBe(0);
    const list = await metalBackup(["list"], env);
    expect(list.stdout.match(/^ {2}\d{8}T/gm)?.length).toBe(4);
    expect(list.stdout).not.toMatch(/dead/);
    expect(list.stdout).toMatch(/dir .*: 2 backup\(s\)/);
    expect(list.stdout).toMatch(/s3 .*: 2 backup\(s\)/);
  });
});

describe("metal-backup run", () => {
  it("backs up on its schedule, applies retention, logs the outcomes without secrets, stops on SIGTERM", async () => {
    const { spawn } = await import("node:child_process");
    const { fileURLToPath } = await import("node:url");
    const bin = fileURLToPath(new URL("../../bin/metal-backup.js", import.meta.url));
    const child = spawn(process.execPath, [bin, "run"], {
      env: { PATH: process.env.PATH ?? "", ...env, ...into(source), METAL_BACKUP_S3_ENDPOINT: "", METAL_BACKUP_INTERVAL: "300ms", METAL_BACKUP_KEEP: "1", LOG_LEVEL: "info" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    child.stderr.on("data", (c: Buffer) => {
      log += c.toString("utf8");
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      await eventually("two scheduled backups and a removal by retention", () => (log.match(/"msg":"backup \S+ done"/g)?.length ?? 0) >= 2 && /removed from dir .* \(retention\)/.test(log));
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    expect(log).toMatch(/metal-backup run: stopped/);
    expect(log).not.toMatch(/postgres:\/\/|S3RVER/);
    expect((await metalBackup(["list", "--from", "dir"], env)).stdout).toMatch(/dir .*: 1 backup\(s\)/);
  });
});
