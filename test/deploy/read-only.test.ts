/**
 * The pods run metal-api, masterdata-api and metal-backup as uid 10001 on a
 * read-only root filesystem, with only /tmp and their data directory
 * writable (deploy/kubernetes/base). No container engine answers on this
 * project's machine, so this test makes that situation with Linux itself:
 * each bin runs in a mount namespace of its own whose root is remounted
 * read-only, with a fresh tmpfs as its one writable directory (the pods'
 * /tmp; here a directory of its own, TMPDIR, where its data directory goes
 * too: a checkout under /tmp would vanish under a tmpfs on /tmp), as uid
 * 10001, against PostgreSQL. A bin that wrote anywhere else (a bundle
 * rebuilt, a cache, a template database) would fail here. As root only.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../helpers/eventually.js";
import { freePort } from "../helpers/free-port.js";
import { has } from "../helpers/netns.js";
import { createScratchDatabase, type ScratchDatabase } from "../helpers/postgres.js";
import { scaled } from "../helpers/timeouts.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const USER = "10001";
const usable = process.getuid?.() === 0 && has("unshare") && has("setpriv") && has("pg_dump");
/** The pods' writable /tmp: a tmpfs mounted here in each bin's namespace (made empty on the real root first). */
const SCRATCH = `/var/tmp/metal-read-only-${process.pid}`;

interface Run {
  proc: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

/** `bin args` as the pod runs it: read-only root, one tmpfs (SCRATCH, its TMPDIR), uid 10001, only `env` (and PATH, TMPDIR) in its environment. */
function runReadOnly(bin: string, args: string[], env: Record<string, string>): Run {
  const script = [
    // Per mount, in this namespace only: the machine's own root stays writable.
    "mount -o remount,bind,ro / || exit 90",
    `mount -t tmpfs -o size=256m,mode=1777 tmpfs ${SCRATCH} || exit 91`,
    `exec setpriv --reuid=${USER} --regid=${USER} --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs "$@"`,
  ].join("\n");
  const proc = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", script, "sh", process.execPath, join(REPO, "bin", `${bin}.js`), ...args], {
    cwd: "/",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TMPDIR: SCRATCH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  proc.stderr!.on("data", (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  return { proc, output: () => out, exit };
}

/** grpc.health.v1.Health/Check over the Connect protocol (what the probes ask, in JSON). */
async function serving(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  return res.ok && ((await res.json()) as { status?: string }).status === "SERVING";
}

describe.skipIf(!usable)("the bins on a read-only root filesystem, as uid 10001", () => {
  let metal: ScratchDatabase;
  let masterdata: ScratchDatabase;
  const running: Run[] = [];

  beforeAll(async () => {
    // As the image does at build time: afterwards the bins only read their bundles.
    const built = spawnSync(process.execPath, [join(REPO, "deploy/bundle-bins.mjs"), "metal-api", "masterdata-api", "metal-backup"], { encoding: "utf8", timeout: scaled(240_000) });
    expect(built.status, built.stderr).toBe(0);
    mkdirSync(SCRATCH, { recursive: true });
    // Empty databases: the first start migrates them, as a new installation's does.
    [metal, masterdata] = await Promise.all([createScratchDatabase("metal_ro"), createScratchDatabase("metal_ro_md")]);
  });

  afterAll(async () => {
    for (const r of running) if (r.proc.exitCode === null) r.proc.kill("SIGKILL");
    await Promise.all([metal?.drop(), masterdata?.drop()]);
    rmSync(SCRATCH, { recursive: true, force: true });
  });

  it("starts metal-api, which migrates, issues the admin token, serves and stops cleanly", async () => {
    const [port, consolePort] = [await freePort(), await freePort()];
    const run = runReadOnly("metal-api", [], {
      METAL_LISTEN: `127.0.0.1:${port}`,
      METAL_CONSOLE_LISTEN: `127.0.0.1:${consolePort}`,
      METAL_DATA_DIR: `${SCRATCH}/metal`,
      DATABASE_URL: metal.url,
      MASTERDATA_DATABASE_URL: masterdata.url,
      LOG_LEVEL: "info",
    });
    running.push(run);
    await eventually(
      `metal-api serving (${run.output().slice(-2000)})`,
      async () => {
        if (run.proc.exitCode !== null) throw new Error(`metal-api exited ${run.proc.exitCode}: ${run.output()}`);
        return await serving(port).catch(() => false);
      },
      scaled(120_000),
    );
    expect(run.output()).toContain(`operator admin token written to ${SCRATCH}/metal/admin-token`);
    run.proc.kill("SIGTERM");
    expect(await run.exit).toBe(0);
    expect(run.output()).not.toMatch(/EROFS|read-only file system|EACCES/i);
  });

  it("starts masterdata-api on the databases metal-api made, and stops cleanly", async () => {
    const port = await freePort();
    const run = runReadOnly("masterdata-api", [], {
      MASTERDATA_LISTEN: `127.0.0.1:${port}`,
      MASTERDATA_DATA_DIR: `${SCRATCH}/masterdata`,
      MASTERDATA_DATABASE_URL: masterdata.url,
      METAL_DATABASE_URL: metal.url,
    });
    running.push(run);
    await eventually(
      `masterdata-api serving (${run.output().slice(-2000)})`,
      async () => {
        if (run.proc.exitCode !== null) throw new Error(`masterdata-api exited ${run.proc.exitCode}: ${run.output()}`);
        return await serving(port).catch(() => false);
      },
      scaled(120_000),
    );
    run.proc.kill("SIGTERM");
    expect(await run.exit).toBe(0);
    expect(run.output()).not.toMatch(/EROFS|read-only file system|EACCES/i);
  });

  it("backs both databases up with metal-backup into its writable directory, and finds nothing to restore into them", async () => {
    const env = { DATABASE_URL: metal.url, MASTERDATA_DATABASE_URL: masterdata.url, METAL_BACKUP_DIR: `${SCRATCH}/backups`, METAL_BACKUP_SCRATCH_DIR: `${SCRATCH}/scratch` };
    const backup = runReadOnly("metal-backup", ["backup"], env);
    running.push(backup);
    expect(await backup.exit, backup.output()).toBe(0);
    expect(backup.output()).not.toMatch(/EROFS|read-only file system|EACCES/i);
    // The pods' first step: the databases hold data, so nothing happens (and nothing is written).
    const restore = runReadOnly("metal-backup", ["restore", "--if-empty"], env);
    running.push(restore);
    expect(await restore.exit, restore.output()).toBe(0);
  });
});
