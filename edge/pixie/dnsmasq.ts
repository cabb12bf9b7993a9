import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type BackoffPolicy, backoffPolicy, retryLoop } from "../../client/backoff.js";
import type { PixieLog } from "./boot-answer.js";
import { IPXE_BIOS, IPXE_EFI, renderDnsmasqConfig } from "./dnsmasq-config.js";

export interface DnsmasqOptions {
  /** The PXE network's interface. */
  iface: string;
  /** An address of the PXE network, where proxy DHCP answers. */
  network: string;
  /** boot.ipxe as machines reach pixie. */
  bootScriptUrl: string;
  /** Where the iPXE builds are (Debian's `ipxe` package: /usr/lib/ipxe); copied into the TFTP root. */
  ipxeDir: string;
  /** pixie's own directory: dnsmasq's config and TFTP root are written there. */
  stateDir: string;
  /** The command that runs dnsmasq, arguments included (default ["dnsmasq"]); tests run it in a network namespace. */
  command?: readonly string[];
  policy?: Partial<BackoffPolicy>;
  log?: PixieLog;
}

/** A dnsmasq that ran this long was healthy: the next failure waits the shortest time again. */
const RESTART_POLICY: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000, jitter: 0.2, resetAfterMs: 60_000 };
/** How long dnsmasq gets to exit on SIGTERM before it is killed. */
const STOP_GRACE_MS = 5_000;
/** dnsmasq's log lines are short; a longer one is cut rather than held. */
const MAX_LINE = 500;
/** log-dhcp's per-option lines: one per option of every packet, too many for pixie's log. */
const CHATTER = /sent size:|available DHCP subnet:|vendor class:|user class:|tags:/;

/**
 * Writes the TFTP root (the iPXE builds) and dnsmasq's config into the state
 * dir; returns the config's path. Throws when an iPXE build is missing:
 * without it PXE firmware would get a file that does not exist.
 */
export function prepareDnsmasq(opts: Omit<DnsmasqOptions, "command" | "policy" | "log">): string {
  const tftpRoot = join(opts.stateDir, "tftp");
  mkdirSync(tftpRoot, { recursive: true });
  // dnsmasq serves TFTP after dropping root to an unprivileged user, who must be able to read the files.
  chmodSync(tftpRoot, 0o755);
  for (const file of [IPXE_BIOS, IPXE_EFI]) {
    const from = join(opts.ipxeDir, file);
    if (!existsSync(from)) throw new Error(`${from} is missing: install Debian's ipxe package, or point pixie's iPXE dir at a directory with ${IPXE_BIOS} and ${IPXE_EFI}`);
    copyFileSync(from, join(tftpRoot, file));
    chmodSync(join(tftpRoot, file), 0o644);
  }
  const config = renderDnsmasqConfig({ iface: opts.iface, network: opts.network, tftpRoot, bootScriptUrl: opts.bootScriptUrl, stateDir: opts.stateDir });
  const path = join(opts.stateDir, "dnsmasq.conf");
  writeFileSync(path, config, { mode: 0o644 });
  return path;
}

/**
 * Runs dnsmasq as pixie's child with the config prepareDnsmasq wrote,
 * restarting it with backoff whenever it exits (a crash, an interface that
 * is not up yet), until close() stops it.
 */
export function superviseDnsmasq(opts: DnsmasqOptions): { configPath: string; close: () => Promise<void> } {
  const log = opts.log ?? (() => {});
  const configPath = prepareDnsmasq(opts);
  const [cmd, ...prefix] = opts.command ?? ["dnsmasq"];
  const stop = new AbortController();
  let child: ChildProcess | undefined;

  const runOnce = () =>
    new Promise<void>((resolve, reject) => {
      // --keep-in-foreground: dnsmasq stays pixie's child; --log-facility=-: its log on stderr, into pixie's.
      const proc = spawn(cmd!, [...prefix, "--keep-in-foreground", `--conf-file=${configPath}`, "--log-facility=-"], { stdio: ["ignore", "ignore", "pipe"] });
      child = proc;
      createInterface({ input: proc.stderr! }).on("line", (line) => {
        if (!CHATTER.test(line)) log("pixie: dnsmasq", { line: line.slice(0, MAX_LINE) });
      });
      proc.once("error", (err) => {
        // A process that never started has nothing to stop.
        if (proc.pid === undefined) child = undefined;
        reject(new Error(`dnsmasq could not start: ${err.message}`));
      });
      proc.once("exit", (code, signal) => {
        child = undefined;
        if (stop.signal.aborted) return resolve();
        reject(new Error(`dnsmasq exited (${signal ?? `code ${code}`})`));
      });
    });

  const loop = retryLoop(() => runOnce(), {
    policy: backoffPolicy(opts.policy, RESTART_POLICY),
    signal: stop.signal,
    onRetry: ({ err, delayMs }) => log("pixie: restarting dnsmasq", { err: String(err instanceof Error ? err.message : err), inMs: Math.round(delayMs) }),
  });

  const close = async () => {
    stop.abort();
    const proc = child;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((r) => proc.once("exit", () => r()));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    await loop;
  };
  return { configPath, close };
}
