import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { safeError } from "../../client/log-redaction.js";
import { describeSettings, SettingsError } from "../../client/settings.js";
import { createLogger, type Logger } from "../logger.js";
import { BackupError, createBackup, prune } from "./backup.js";
import { BackupKeyError } from "./crypto.js";
import { isBackupId, parseManifest, totalSize } from "./manifest.js";
import { newestFirst, RestoreRefused, restoreBackup, restoreIfEmpty, verifyBackup } from "./restore.js";
import { runSchedule } from "./run.js";
import { BACKUP_SETTINGS, type BackupSettings, loadBackupSettings } from "./settings.js";
import { loadKeys, storesOf } from "./targets.js";

const USAGE = `metal-backup: backups of metal-api's two databases (metal and masterdata)

Usage: metal-backup <command> [backup id] [options]

Commands:
  backup          back up both databases now, then apply retention
  restore [id]    restore the newest (or the given) backup into empty databases
  list            list the backups of every target
  verify [id]     check a backup completely without restoring it (default: the newest)
  run             sidecar: back up every --interval, apply retention, log the outcomes

Options of the commands:
  --force         restore: restore over databases that hold data (their contents are replaced)
                  backup: back up an embedded database that looks open (only consistent if nothing writes)
  --if-empty      restore: restore only when both databases are empty and a backup exists; else do nothing
  --from dir|s3   restore, verify, list: use this target only
  --all           verify: every complete backup

Settings (each also an environment variable):
${describeSettings(BACKUP_SETTINGS)}

Secrets, from the environment or a file (VAR_FILE), never from a flag:
  $METAL_BACKUP_S3_ACCESS_KEY, $METAL_BACKUP_S3_SECRET_KEY (or ..._FILE)
  $METAL_BACKUP_KEY_FILE names the encryption key (32 bytes; e.g. openssl rand -hex 32)

See docs/backup.md.
`;

interface Args {
  command: string;
  id: string | undefined;
  force: boolean;
  ifEmpty: boolean;
  all: boolean;
  from: "dir" | "s3" | undefined;
  settings: string[];
}

function parseArgs(argv: string[]): Args {
  const [command = "", ...rest] = argv;
  const a: Args = { command, id: undefined, force: false, ifEmpty: false, all: false, from: undefined, settings: [] };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === "--force") a.force = true;
    else if (arg === "--if-empty") a.ifEmpty = true;
    else if (arg === "--all") a.all = true;
    else if (arg === "--from" || arg.startsWith("--from=")) {
      const v = arg === "--from" ? rest[++i] : arg.slice("--from=".length);
      if (v !== "dir" && v !== "s3") throw new SettingsError(`--from takes dir or s3, not ${JSON.stringify(v ?? "")}`);
      a.from = v;
    } else if (!arg.startsWith("--") && a.id === undefined) {
      if (!isBackupId(arg)) throw new SettingsError(`"${arg}" is not a backup id (like 20261205T191632Z-3fa9; see metal-backup list)`);
      a.id = arg;
    } else {
      a.settings.push(arg);
      // A flag's value travels with it.
      if (arg.startsWith("--") && !arg.includes("=") && i + 1 < rest.length) a.settings.push(rest[++i]!);
    }
  }
  return a;
}

const mib = (n: number) => `${(n / 1048576).toFixed(n < 10_485_760 ? 2 : 0)} MiB`;

async function list(settings: BackupSettings, a: Args): Promise<number> {
  for (const store of storesOf(settings, a.from)) {
    const listed = (await store.list()).sort((x, y) => (x.id < y.id ? 1 : -1));
    process.stdout.write(`${store.name}: ${listed.length} backup(s)\n`);
    for (const b of listed) {
      if (!b.complete) {
        process.stdout.write(`  ${b.id}  incomplete (no manifest)\n`);
        continue;
      }
      try {
        const m = parseManifest((await store.readManifest(b.id)) ?? "", b.id);
        const engines = [...new Set(m.parts.map((p) => p.engine))].join("+");
        process.stdout.write(`  ${b.id}  ${m.createdAt}  ${mib(totalSize(m)).padStart(10)}  ${engines}  ${m.encryption ? "encrypted" : "not encrypted"}  metal-api ${m.producer}\n`);
      } catch (err) {
        process.stdout.write(`  ${b.id}  unreadable manifest: ${(err as Error).message}\n`);
      }
    }
  }
  return 0;
}

async function verify(settings: BackupSettings, a: Args, log: Logger): Promise<number> {
  const stores = storesOf(settings, a.from);
  const keys = loadKeys(settings, log);
  const all = await newestFirst(stores);
  const chosen = a.id ? all.filter((b) => b.id === a.id) : a.all ? all : all.slice(0, 1);
  if (chosen.length === 0) throw new RestoreRefused(a.id ? `there is no complete backup ${a.id}` : "there is no complete backup");
  let bad = 0;
  for (const b of chosen) {
    const scratch = await mkdtemp(join(settings.scratchDir ?? tmpdir(), "metal-verify-"));
    try {
      const v = await verifyBackup(b.store, b.id, keys, scratch);
      process.stdout.write(`${b.id} in ${b.store.name}: good (${v.manifest.parts.map((p) => `${p.database} ${mib(p.size)}`).join(", ")})\n`);
    } catch (err) {
      if (!(err instanceof RestoreRefused)) throw err;
      bad++;
      process.stdout.write(`${b.id} in ${b.store.name}: BAD: ${err.message}\n`);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  return bad === 0 ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv.includes("--help") || argv.includes("-h") || argv[0] === "help") {
    process.stdout.write(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  const a = parseArgs(argv);
  const settings = loadBackupSettings(process.env, a.settings);
  // Logs to stderr: stdout carries what list and verify print.
  const log = createLogger(settings.logLevel, { destination: pino.destination(2) });
  switch (a.command) {
    case "backup": {
      const stores = storesOf(settings);
      const keys = loadKeys(settings, log);
      if (!keys) log.warn("METAL_BACKUP_KEY_FILE is not set: the backup is not encrypted, and it holds secrets (token signing keys, BMC logins, the console host key)");
      const m = await createBackup({ settings, stores, keys, log, force: a.force });
      await prune({ settings, stores, keys, log });
      process.stdout.write(`${m.id}\n`);
      return 0;
    }
    case "restore": {
      const stores = storesOf(settings, a.from);
      const keys = loadKeys(settings, log);
      if (a.ifEmpty) {
        const outcome = await restoreIfEmpty({ settings, stores, keys, log });
        process.stdout.write("restored" in outcome ? `restored ${outcome.restored.id}\n` : `nothing restored: ${outcome.skipped}\n`);
        return 0;
      }
      const m = await restoreBackup({ settings, stores, keys, log, id: a.id, force: a.force });
      process.stdout.write(`restored ${m.id}\n`);
      return 0;
    }
    case "list":
      return list(settings, a);
    case "verify":
      return verify(settings, a, log);
    case "run": {
      const stores = storesOf(settings);
      if (stores.length === 0) throw new BackupError("no backup target: set METAL_BACKUP_DIR and/or METAL_BACKUP_S3_ENDPOINT");
      if (Object.values(settings.databases).some((d) => d.engine === "pglite")) {
        throw new BackupError(
          "run backs up PostgreSQL databases while metal-api runs; an embedded (PGlite) database cannot be read while metal-api has it open: back it up with `metal-backup backup` while metal-api is stopped (docs/backup.md)",
        );
      }
      const keys = loadKeys(settings, log);
      const schedule = runSchedule({ settings, stores, keys, log });
      const stop = () => void schedule.stop();
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
      await schedule.done;
      log.info("metal-backup run: stopped");
      return 0;
    }
    default:
      throw new SettingsError(`unknown command "${a.command}" (backup, restore, list, verify, run; --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof SettingsError) {
      process.stderr.write(`metal-backup: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof RestoreRefused || err instanceof BackupError || err instanceof BackupKeyError) {
      process.stderr.write(`metal-backup: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      // Through the log rules: a failed query's stack could carry its parameters.
      process.stderr.write(`metal-backup: ${(err as Error)?.message ?? JSON.stringify(safeError(err))}\n`);
      process.exitCode = 1;
    }
  },
);
