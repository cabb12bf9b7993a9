import { closeSync, openSync, readSync } from "node:fs";
import type { Transport } from "@connectrpc/connect";
import { createFailoverTransport } from "../../client/failover-transport.js";
import { parseHostPort } from "../../client/host-port.js";
import { describeSettings, readSettings, type SettingsReader } from "../../client/settings.js";
import { type BootParams, parseBootParams } from "./boot-params.js";
import { MachineCredential } from "./credential.js";
import type { HammerTiming } from "./hammer.js";

/**
 * What metal-hammer needs on any hardware: each an environment variable and
 * the matching `--flag`. Which machine it is, its partition, its credential
 * and the metal-cores to reach the control plane through come from the
 * kernel command line pixie booted it with; the hammer reaches nothing else.
 */
export interface HammerConfig {
  boot: BootParams;
  timing: Partial<HammerTiming>;
}

export const HAMMER_SETTINGS = {
  bootParams: { env: "METAL_HAMMER_BOOT_PARAMS", flag: "boot-params", fallback: "/proc/cmdline" },
  cores: { env: "METAL_HAMMER_CORES", flag: "cores", optional: true },
  aliveSeconds: { env: "METAL_HAMMER_ALIVE_INTERVAL", flag: "alive-interval", fallback: "60" },
  crashRebootSeconds: { env: "METAL_HAMMER_CRASH_REBOOT_DELAY", flag: "crash-reboot-delay", fallback: "5" },
} as const;

const SETTINGS_HELP =
  "\n\n  --boot-params  a file with the kernel command line that has metal.machine, metal.partition, metal.credential," +
  "\n                 metal.credential-expires and metal.cores (what pixie boots the discovery image with)" +
  "\n  --cores        host:port,... of metal-cores to use instead of the command line's metal.cores";

export const describeHammerSettings = (): string => describeSettings(HAMMER_SETTINGS) + SETTINGS_HELP;

/** More than any kernel command line: a file this long is not one. */
const MAX_BOOT_PARAMS_BYTES = 65_536;

/** The file's text, refusing one longer than `max` bytes (a /proc file reports no size, so it is read, not stat'ed). */
function readBounded(path: string, max: number): string {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    if (n > max) throw new Error(`longer than ${max} bytes: not a kernel command line`);
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/** The common settings from a reader that may know more (the simulated hammer adds its machine's). */
export function hammerConfigFrom(r: SettingsReader<keyof typeof HAMMER_SETTINGS>): HammerConfig {
  const cores = r.list("cores");
  for (const c of cores) r.parse("cores", () => parseHostPort(c));
  const boot = r.parse("bootParams", (path) => {
    let cmdline: string;
    try {
      cmdline = readBounded(path, MAX_BOOT_PARAMS_BYTES);
    } catch (err) {
      throw new Error(`cannot read ${path}: ${(err as Error).message}`);
    }
    // An override is a later parameter, which wins as on the kernel's command line.
    return parseBootParams(cores.length > 0 ? `${cmdline} metal.cores=${cores.join(",")}` : cmdline);
  });
  return { boot, timing: { aliveMs: r.seconds("aliveSeconds"), crashRebootMs: r.seconds("crashRebootSeconds") } };
}

/** Flags win over the environment; throws with a message fit for the user on anything missing or malformed. */
export function loadHammerConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): HammerConfig {
  return hammerConfigFrom(readSettings(HAMMER_SETTINGS, env, argv));
}

/** The machine's credential and its way to the control plane: its metal-cores in order, the credential as token. */
export function connectThroughCores(boot: BootParams, log?: (msg: string, fields?: Record<string, unknown>) => void): { credential: MachineCredential; transport: Transport } {
  const credential = new MachineCredential({ machineId: boot.machineId, partition: boot.partition, secret: boot.credential, expiresAt: boot.credentialExpiresAt });
  const transport = createFailoverTransport({ endpoints: boot.cores.map((c) => `http://${c}`), token: () => credential.secret, log });
  return { credential, transport };
}
