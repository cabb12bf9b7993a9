import { spawn } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * Every external command of the Linux adapter goes through a CommandRunner:
 * argv arrays only (no shell, so a label or a path can never become a second
 * command), a timeout per command, bounded output, and one error type that
 * says what ran and how it ended. Tests inject a fake that records the calls.
 */
export interface CommandRunner {
  run(argv: readonly string[], opts?: RunOptions): Promise<CommandResult>;
  /** Whether a command is installed: optional tools (partprobe, udevadm, lldpcli, blkdiscard) are skipped when absent. */
  has(command: string): boolean;
}

export interface RunOptions {
  /** Killed (with its whole process group) after this long. Default 60 s. */
  timeoutMs?: number;
  /** Written to the command's stdin (secrets go here or in env, never in argv); stdin is /dev/null otherwise. */
  input?: string;
  /** Added to the minimal environment. */
  env?: Record<string, string>;
  /** Resolve with the result on a non-zero exit instead of throwing (the caller decides). */
  allowFailure?: boolean;
}

export interface CommandResult {
  /** The exit code; null when a signal ended the command. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last OUTPUT_LIMIT bytes of stdout and stderr. */
  stdout: string;
  stderr: string;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
/** How much of stdout and stderr is kept: inventory JSON fits easily, a chatty mkfs or tar is cut to its end. */
export const OUTPUT_LIMIT = 64 * 1024;
/** How long output is still read after the command exited, from pipes something it started keeps open. */
const DRAIN_MS = 2_000;
/** The error message stays short enough for a Crashed event (1000 characters). */
const MESSAGE_LIMIT = 1000;

/**
 * The environment every command gets: a PATH that finds the system tools and
 * a C locale so their output parses the same everywhere. Nothing of the
 * hammer's own environment (its credential above all) is passed on.
 */
export const BASE_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C",
  LC_ALL: "C",
  // LVM warns about every descriptor it inherits; nothing is inherited on purpose, the warning is noise.
  LVM_SUPPRESS_FD_WARNINGS: "1",
};

/** A command that could not start, exited non-zero, was killed by a signal, or ran out of time. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: CommandResult,
    readonly reason: "exit" | "signal" | "timeout" | "spawn",
    detail = "",
  ) {
    super(describeFailure(argv, result, reason, detail));
    this.name = "CommandError";
  }
}

function describeFailure(argv: readonly string[], r: CommandResult, reason: CommandError["reason"], detail: string): string {
  const cmd = argv.join(" ");
  const how =
    reason === "timeout" ? `timed out${detail ? ` after ${detail}` : ""}` : reason === "spawn" ? `could not start: ${detail}` : reason === "signal" ? `was killed by ${r.signal}` : `exited with ${r.code}`;
  const head = `${cmd.length > 200 ? `${cmd.slice(0, 200)}…` : cmd} ${how}`;
  const tail = (r.stderr.trim() || r.stdout.trim()).replace(/\s+/g, " ");
  if (!tail) return head.slice(0, MESSAGE_LIMIT);
  const room = MESSAGE_LIMIT - head.length - 2;
  return room > 20 ? `${head}: ${tail.length > room ? `…${tail.slice(-(room - 1))}` : tail}` : head.slice(0, MESSAGE_LIMIT);
}

/** Keeps the last `limit` bytes of a stream. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}
  push(b: Buffer) {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size - this.chunks[0]!.length >= this.limit) this.size -= this.chunks.shift()!.length;
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString("utf8");
  }
}

/** The real runner: spawns each command in its own process group, so a timeout kills what it started too. */
export function spawnRunner(): CommandRunner {
  return {
    has: onPath,
    run(argv, opts = {}) {
      if (argv.length === 0) return Promise.reject(new Error("no command given"));
      const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      return new Promise((resolve, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), {
          env: { ...BASE_ENV, ...opts.env },
          stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
          detached: true,
        });
        const out = new Tail(OUTPUT_LIMIT);
        const err = new Tail(OUTPUT_LIMIT);
        child.stdout!.on("data", (b: Buffer) => out.push(b));
        child.stderr!.on("data", (b: Buffer) => err.push(b));
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          killGroup(child.pid);
        }, timeoutMs);
        if (opts.input !== undefined) {
          // A command that exits without reading its input must not crash the hammer with EPIPE.
          child.stdin!.on("error", () => {});
          child.stdin!.end(opts.input);
        }
        let spawnError: Error | undefined;
        child.on("error", (e) => {
          spawnError = e;
        });
        // A daemon the command left behind (a udev or entropy daemon an install step started) keeps the output pipes open:
        // once the command itself has exited, what is left of its output is read for a moment, then the pipes are let go.
        let drain: NodeJS.Timeout | undefined;
        child.on("exit", () => {
          drain = setTimeout(() => {
            child.stdout!.destroy();
            child.stderr!.destroy();
          }, DRAIN_MS);
        });
        child.on("close", (code, signal) => {
          clearTimeout(timer);
          clearTimeout(drain);
          const result: CommandResult = { code, signal, stdout: out.text(), stderr: err.text() };
          if (spawnError) return reject(new CommandError(argv, result, "spawn", spawnError.message));
          if (timedOut) return reject(new CommandError(argv, result, "timeout", `${timeoutMs} ms`));
          if (code === 0 || opts.allowFailure) return resolve(result);
          reject(new CommandError(argv, result, signal ? "signal" : "exit"));
        });
      });
    },
  };
}

function killGroup(pid: number | undefined) {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Looks a command up on BASE_ENV's PATH, as the spawned command would be found. */
function onPath(name: string): boolean {
  return BASE_ENV.PATH!.split(":").some((dir) => existsSync(`${dir}/${name}`));
}
