import { describeSettings, readSettings } from "../common/settings.js";
import type { HammerTiming } from "./hammer.js";

/** metal-hammer's settings: each an environment variable and the matching `--flag`. */
export interface HammerConfig {
  apiUrl: string;
  token: string;
  partition: string;
  /** Only "sim" exists so far: a simulated machine described by the sim settings. */
  hardware: "sim";
  sim: { uuid: string; disks: { name: string; sizeBytes: bigint }[]; nics: { name: string; mac: string; neighbors: { hostname: string; port: string }[] }[] };
  timing: Partial<HammerTiming>;
}

const settings = {
  apiUrl: { env: "METAL_API_URL", flag: "api-url", fallback: "http://127.0.0.1:8080" },
  token: { env: "METAL_HAMMER_TOKEN", flag: "token" },
  partition: { env: "METAL_HAMMER_PARTITION_ID", flag: "partition" },
  hardware: { env: "METAL_HAMMER_HARDWARE", flag: "hardware", fallback: "sim" },
  simUuid: { env: "METAL_HAMMER_SIM_UUID", flag: "sim-uuid", fallback: "" },
  simDisks: { env: "METAL_HAMMER_SIM_DISKS", flag: "sim-disks", fallback: "/dev/sda=240000000000" },
  simNics: { env: "METAL_HAMMER_SIM_NICS", flag: "sim-nics", fallback: "" },
  aliveSeconds: { env: "METAL_HAMMER_ALIVE_INTERVAL", flag: "alive-interval", fallback: "60" },
  crashRebootSeconds: { env: "METAL_HAMMER_CRASH_REBOOT_DELAY", flag: "crash-reboot-delay", fallback: "5" },
} as const;

export const describeHammerSettings = (): string =>
  describeSettings(settings) +
  "\n\n  --sim-disks  name=bytes,...            e.g. /dev/sda=240000000000,/dev/sdb=960000000000" +
  "\n  --sim-nics   name=mac@switch/port,...   e.g. eth0=0c:c4:7a:00:00:01@leaf01/swp1,eth1=0c:c4:7a:00:00:02@leaf02/swp1\n";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Flags win over the environment; throws with a message fit for the user on anything missing or malformed. */
export function loadHammerConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): HammerConfig {
  const { get, seconds, list: listOf } = readSettings(settings, env, argv);
  const hardware = get("hardware");
  if (hardware !== "sim") throw new Error(`--hardware "${hardware}": only "sim" is implemented (the Linux adapter is not built yet)`);
  const uuid = get("simUuid");
  if (!UUID.test(uuid)) throw new Error("--sim-uuid must be the simulated machine's UUID");
  const disks = listOf("simDisks").map((d) => {
    const m = /^(\/dev\/\S+)=(\d+)$/.exec(d);
    if (!m) throw new Error(`--sim-disks: "${d}" is not name=bytes`);
    return { name: m[1]!, sizeBytes: BigInt(m[2]!) };
  });
  const nics = listOf("simNics").map((n) => {
    const m = /^([\w.-]+)=((?:[0-9a-f]{2}:){5}[0-9a-f]{2})(?:@([\w.-]+)\/([\w./-]+))?$/i.exec(n);
    if (!m) throw new Error(`--sim-nics: "${n}" is not name=mac@switch/port`);
    return { name: m[1]!, mac: m[2]!.toLowerCase(), neighbors: m[3] ? [{ hostname: m[3], port: m[4]! }] : [] };
  });
  if (nics.length === 0) throw new Error("--sim-nics: the machine needs at least one NIC");
  return {
    apiUrl: get("apiUrl"),
    token: get("token"),
    partition: get("partition"),
    hardware,
    sim: { uuid, disks, nics },
    timing: { aliveMs: seconds("aliveSeconds"), crashRebootMs: seconds("crashRebootSeconds") },
  };
}
