import { isIP } from "node:net";
import { describeSettings, readSettings } from "../../client/settings.js";
import { leveledJsonLog } from "../common/log.js";
import { DEFAULT_SETTINGS, type LocalSettings } from "./config.js";
import { LinuxSwitch } from "./linux-switch.js";
import { DEFAULT_TIMING, MetalCore, type MetalCoreTimingInput } from "./metal-core.js";

/** metal-core's settings: each an environment variable and the matching `--flag` (flags win). */
const settings = {
  apiUrl: { env: "METAL_API_URL", flag: "api-url", fallback: "http://127.0.0.1:8080" },
  token: { env: "METAL_CORE_TOKEN", flag: "token" },
  partition: { env: "METAL_CORE_PARTITION_ID", flag: "partition" },
  rack: { env: "METAL_CORE_RACK_ID", flag: "rack" },
  root: { env: "METAL_CORE_ROOT", flag: "root", fallback: "/" },
  reload: { env: "METAL_CORE_RELOAD_COMMAND", flag: "reload-command", fallback: "systemctl reload frr.service && ifreload -a" },
  asn: { env: "METAL_CORE_ASN", flag: "asn", fallback: String(DEFAULT_SETTINGS.asn) },
  loopback: { env: "METAL_CORE_LOOPBACK_IP", flag: "loopback-ip", fallback: DEFAULT_SETTINGS.loopback },
  pxeVlan: { env: "METAL_CORE_PXE_VLAN_ID", flag: "pxe-vlan-id", fallback: String(DEFAULT_SETTINGS.pxeVlan) },
  cidr: { env: "METAL_CORE_CIDR", flag: "cidr", fallback: DEFAULT_SETTINGS.pxeCidr },
  uplinks: { env: "METAL_CORE_SPINE_UPLINKS", flag: "spine-uplinks", fallback: DEFAULT_SETTINGS.uplinks.join(",") },
  heartbeat: { env: "METAL_CORE_HEARTBEAT_INTERVAL", flag: "heartbeat-interval", fallback: String(DEFAULT_TIMING.heartbeatMs / 1000) },
  phoneHome: { env: "METAL_CORE_PHONE_HOME_INTERVAL", flag: "phone-home-interval", fallback: String(DEFAULT_TIMING.phoneHomeMs / 1000) },
  /** Where metal-hammer on this switch's machines reaches the control plane through metal-core; unset: not served. */
  machineListen: { env: "METAL_CORE_MACHINE_LISTEN", flag: "machine-listen", optional: true },
  /** The machine endpoint as machines reach it, when not the listen address (e.g. behind NAT, or listening on every interface). */
  machineEndpoint: { env: "METAL_CORE_MACHINE_ENDPOINT", flag: "machine-endpoint", optional: true },
} as const;

export interface MetalCoreConfig {
  apiUrl: string;
  token: string;
  partition: string;
  rack: string;
  root: string;
  reloadCommand: string;
  settings: Omit<LocalSettings, "hostname">;
  timing: MetalCoreTimingInput;
  /** host:port of the machine endpoint; undefined: none. */
  machineListen?: string;
  /** The advertised machine endpoint, when not derived from machineListen. */
  machineEndpoint?: string;
}

export const describeCoreSettings = (): string => describeSettings(settings);

/** Throws with a message fit for the operator on anything missing or malformed. */
export function loadCoreConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): MetalCoreConfig {
  const { get, int, seconds, list, url, optional, hostPort } = readSettings(settings, env, argv);
  const loopback = get("loopback");
  if (isIP(loopback) !== 4) throw new Error(`--loopback-ip must be an IPv4 address, not "${loopback}"`);
  const cidr = get("cidr");
  if (!/^[\d.]+\/\d{1,2}$/.test(cidr) || isIP(cidr.split("/")[0]!) !== 4) throw new Error(`--cidr must be an IPv4 address with prefix length, not "${cidr}"`);
  const machineListen = optional("machineListen") === undefined ? undefined : hostPort("machineListen");
  const machineEndpoint = optional("machineEndpoint") === undefined ? undefined : hostPort("machineEndpoint");
  if (machineEndpoint !== undefined && machineListen === undefined)
    throw new Error("--machine-endpoint ($METAL_CORE_MACHINE_ENDPOINT) needs --machine-listen ($METAL_CORE_MACHINE_LISTEN): it advertises the machine endpoint that one serves");
  return {
    apiUrl: url("apiUrl", ["http:", "https:"]),
    token: get("token"),
    partition: get("partition"),
    rack: get("rack"),
    root: get("root"),
    reloadCommand: get("reload"),
    settings: {
      asn: int("asn", 1, 4_294_967_295),
      loopback,
      pxeVlan: int("pxeVlan", 1, 4094),
      pxeCidr: cidr,
      uplinks: list("uplinks"),
    },
    timing: { heartbeatMs: seconds("heartbeat"), phoneHomeMs: seconds("phoneHome") },
    machineListen,
    machineEndpoint,
  };
}

/** The metal-core binary on a Cumulus-style leaf, until SIGINT/SIGTERM. */
export async function runMetalCore(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`metal-core: renders and applies a leaf switch's config from the control plane\n\n${describeCoreSettings()}\n`);
    return 0;
  }
  let config: MetalCoreConfig;
  try {
    config = loadCoreConfig(process.env, argv);
  } catch (err) {
    process.stderr.write(`metal-core: ${(err as Error).message}\n`);
    return 2;
  }
  const log = leveledJsonLog;
  const core = new MetalCore({
    url: config.apiUrl,
    token: config.token,
    partition: config.partition,
    rack: config.rack,
    os: new LinuxSwitch({ root: config.root, reloadCommand: config.reloadCommand }),
    settings: config.settings,
    timing: config.timing,
    machineListen: config.machineListen,
    machineEndpoint: config.machineEndpoint,
    log,
  });
  core.onSync((s) => log(s.error ? "warn" : "info", s.error ? "sync failed" : "synced", { generation: s.generation, changed: s.changed, durationMs: Math.round(s.durationMs), error: s.error || undefined }));
  log("info", "metal-core starting", { api: config.apiUrl, partition: config.partition, rack: config.rack, root: config.root, machineListen: config.machineListen });
  core.start();
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => resolve());
  });
  await core.stop();
  return 0;
}
