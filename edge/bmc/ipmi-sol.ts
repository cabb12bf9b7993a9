import { spawn } from "node:child_process";
import type { BmcTarget } from "./adapter.js";
import type { ConsoleAdapter, SerialConsole } from "./console.js";
import { type IpmiOptions, ipmitoolArgs } from "./ipmi.js";

export interface IpmiSolOptions extends IpmiOptions {
  program?: string;
  /**
   * util-linux `script`, which gives ipmitool the terminal it insists on:
   * without one it cannot switch its input to raw mode and drops what is typed.
   */
  script?: string;
  /** How long the BMC may take to establish the SOL session. */
  readyTimeoutMs?: number;
}

const READY = "[SOL Session operational.";

/** One argument for `sh -c`, quoted so that nothing in it is interpreted. */
const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * Serial-over-LAN through `ipmitool sol activate`. One ipmitool process per
 * attachment; closing sends ipmitool's own disconnect sequence so the BMC
 * frees its SOL payload (a killed ipmitool leaves it "already active" on many
 * BMCs until it times out), and kills the process if that does not end it.
 * SOL has no window size, so resizes are dropped. ipmitool's escape character
 * stays `~`: `~.` typed at the start of a line ends the console, as in ssh.
 * An SOL session replays nothing the machine printed before it was
 * activated, so all its output is live and carries the time it arrived.
 */
export class IpmiSolConsoles implements ConsoleAdapter {
  constructor(private readonly opts: IpmiSolOptions = {}) {}

  openConsole(target: BmcTarget, _machineId: string, signal?: AbortSignal): Promise<SerialConsole> {
    const { args, env } = ipmitoolArgs(target, ["sol", "activate"], this.opts);
    const command = [this.opts.program ?? "ipmitool", ...args].map(shellQuote).join(" ");
    const child = spawn(this.opts.script ?? "script", ["-qfec", command, "/dev/null"], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    const dataListeners = new Set<(d: Uint8Array, producedAt: Date) => void>();
    const closeListeners = new Set<(r?: string) => void>();
    /** Output that arrived before the first listener, with its arrival time. */
    let held: { data: Buffer; at: Date }[] = [];
    let ready = false;
    let early = "";
    let exited = false;
    let exitReason: string | undefined;

    return new Promise<SerialConsole>((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (!exited) child.kill("SIGKILL");
        reject(new Error(why));
      };
      const timer = setTimeout(() => fail(`ipmitool sol activate on ${target.host}:${target.port}: no SOL session after ${this.opts.readyTimeoutMs ?? 20_000} ms`), this.opts.readyTimeoutMs ?? 20_000);
      const onAbort = () => fail("cancelled");
      signal?.addEventListener("abort", onAbort, { once: true });

      const console: SerialConsole = {
        write: (data) => {
          if (!exited) child.stdin.write(data);
        },
        onData: (l) => {
          dataListeners.add(l);
          for (const h of held) l(h.data, h.at);
          held = [];
        },
        onClose: (l) => {
          if (exited) l(exitReason);
          else closeListeners.add(l);
        },
        close: () => {
          if (exited) return;
          // ipmitool's escape is only seen at the start of a line.
          child.stdin.write("\r~.");
          const kill = setTimeout(() => child.kill("SIGTERM"), 2_000);
          kill.unref();
          child.once("exit", () => clearTimeout(kill));
        },
      };

      child.stdout.on("data", (chunk: Buffer) => {
        if (!ready) {
          early += chunk.toString("latin1");
          const at = early.indexOf(READY);
          if (at === -1) return;
          const eol = early.indexOf("\n", at);
          if (eol === -1) return;
          ready = true;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          const rest = Buffer.from(early.slice(eol + 1), "latin1");
          if (rest.length > 0) held.push({ data: rest, at: new Date() });
          resolve(console);
          return;
        }
        const at = new Date();
        if (dataListeners.size === 0) held.push({ data: chunk, at });
        else for (const l of dataListeners) l(chunk, at);
      });
      child.stderr.on("data", (chunk: Buffer) => (early += chunk.toString("latin1")));
      child.on("error", (err) => {
        exited = true;
        if (!ready) fail(`cannot run ${this.opts.script ?? "script"}: ${err.message}`);
      });
      child.on("exit", (code) => {
        exited = true;
        const last = early.replace(/\r/g, "").trim().split("\n").filter(Boolean).slice(-1)[0] ?? "";
        if (!ready) return fail(`ipmitool sol activate on ${target.host}:${target.port}: ${last || `exited with ${code}`}`);
        exitReason = code === 0 ? undefined : `ipmitool exited with ${code}`;
        for (const l of closeListeners) l(exitReason);
        closeListeners.clear();
      });
    });
  }
}
