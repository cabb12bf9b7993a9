import { execFile } from "node:child_process";
import type { BmcAdapter, BmcCommandName, BmcInfo, BmcTarget } from "./adapter.js";

/** Runs a program and resolves with its standard output; rejects with its error output. */
export type Runner = (program: string, args: readonly string[], env: Record<string, string>, signal?: AbortSignal) => Promise<string>;

const TIMEOUT_MS = 60_000;

export const execRunner: Runner = (program, args, env, signal) =>
  new Promise((resolve, reject) => {
    execFile(program, args, { env: { ...process.env, ...env }, timeout: TIMEOUT_MS, signal, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${program} ${args.slice(-3).join(" ")}: ${(stderr || err.message).trim().split("\n").slice(-1)[0]}`));
      else resolve(stdout);
    });
  });

/** The ipmitool words of each command. */
export const IPMI_COMMAND_ARGS: Record<BmcCommandName, readonly string[]> = {
  POWER_ON: ["chassis", "power", "on"],
  POWER_OFF: ["chassis", "power", "off"],
  RESET: ["chassis", "power", "reset"],
  CYCLE: ["chassis", "power", "cycle"],
  BOOT_FROM_BIOS: ["chassis", "bootdev", "bios"],
  BOOT_FROM_DISK: ["chassis", "bootdev", "disk"],
  BOOT_FROM_PXE: ["chassis", "bootdev", "pxe"],
  LED_ON: ["chassis", "identify", "force"],
  LED_OFF: ["chassis", "identify", "0"],
};

export interface IpmiOptions {
  /**
   * RMCP+ cipher suite (`-C`). Unset, ipmitool 1.8.19 asks the BMC which
   * suites it has, and a BMC that cannot answer costs ten seconds per call;
   * 3 is what older BMCs speak, 17 newer ones.
   */
  cipherSuite?: number;
}

/**
 * The full argument list of one ipmitool call. The password travels in the
 * environment (`-E` reads IPMI_PASSWORD) rather than as `-P`, where every
 * user of the management server could read it in the process list.
 */
export function ipmitoolArgs(target: BmcTarget, words: readonly string[], opts: IpmiOptions = {}): { args: string[]; env: Record<string, string> } {
  const cipher = opts.cipherSuite === undefined ? [] : ["-C", String(opts.cipherSuite)];
  return {
    args: ["-I", target.interface || "lanplus", ...cipher, "-H", target.host, "-p", String(target.port), "-U", target.user, "-E", ...words],
    env: { IPMI_PASSWORD: target.password },
  };
}

/** `Key : Value` lines of ipmitool output, keys as printed. */
function fields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    const k = line.slice(0, i).trim();
    const v = line.slice(i + 1).trim();
    if (k && !out.has(k)) out.set(k, v);
  }
  return out;
}

/**
 * FRU fields of the first FRU device (the board's own, id 0), keys in
 * snake case as the control plane stores them ("Board Serial" -> board_serial).
 */
export function parseFru(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const firstDevice = text.split(/\n\s*\n/)[0] ?? "";
  for (const [k, v] of fields(firstDevice)) {
    if (k.startsWith("FRU Device Description") || v === "") continue;
    const key = k
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "_")
      .replace(/^_|_$/g, "");
    if (key && Object.keys(out).length < 32) out[key] = v.slice(0, 256);
  }
  return out;
}

export function parsePowerStatus(text: string): BmcInfo["powerState"] {
  const m = /Chassis Power is (on|off)/i.exec(text);
  return m ? (m[1]!.toLowerCase() === "on" ? "ON" : "OFF") : "UNKNOWN";
}

/** `System GUID : 01234567-...` of `mc guid`, lowercased; empty when the BMC does not tell. */
export function parseGuid(text: string): string {
  const v = fields(text).get("System GUID") ?? "";
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v) ? v.toLowerCase() : "";
}

/** IPMI over LAN through the ipmitool program. */
export class IpmiAdapter implements BmcAdapter {
  constructor(
    private readonly run: Runner = execRunner,
    private readonly program = "ipmitool",
    private readonly options: IpmiOptions = {},
  ) {}

  private call(target: BmcTarget, words: readonly string[], signal?: AbortSignal): Promise<string> {
    const { args, env } = ipmitoolArgs(target, words, this.options);
    return this.run(this.program, args, env, signal);
  }

  async query(target: BmcTarget, signal?: AbortSignal): Promise<BmcInfo> {
    // One call after the other: small BMCs answer one session at a time.
    const guid = await this.identify(target, signal);
    const mc = fields(await this.call(target, ["mc", "info"], signal));
    const power = parsePowerStatus(await this.call(target, ["chassis", "power", "status"], signal));
    // FRU data is optional: many BMCs have none or answer with an error.
    const fru = await this.call(target, ["fru", "print"], signal).then(parseFru, () => ({}));
    return { uuid: guid, firmware: mc.get("Firmware Revision") ?? "", powerState: power, fru };
  }

  async identify(target: BmcTarget, signal?: AbortSignal): Promise<string> {
    const guid = parseGuid(await this.call(target, ["mc", "guid"], signal));
    if (!guid) throw new Error(`BMC ${target.host}:${target.port} reports no system GUID`);
    return guid;
  }

  async execute(target: BmcTarget, command: BmcCommandName, signal?: AbortSignal): Promise<string> {
    const out = await this.call(target, IPMI_COMMAND_ARGS[command], signal);
    return out.trim().split("\n").slice(-1)[0] || "ok";
  }
}
