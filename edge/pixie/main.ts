import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { formatHostPort, parseHostPort } from "../../client/host-port.js";
import { describeSettings, readSettings } from "../../client/settings.js";
import { createTransport } from "../../client/transport.js";
import { jsonLog } from "../common/log.js";
import { superviseDnsmasq } from "./dnsmasq.js";
import { startPixie } from "./pixie.js";

/** pixie's settings: each an environment variable and the matching `--flag` (flags win). */
const settings = {
  apiUrl: { env: "METAL_API_URL", flag: "api-url", fallback: "http://127.0.0.1:8080" },
  /** The partition's infra token; or a file holding it (a mounted secret). */
  token: { env: "METAL_PIXIE_TOKEN", flag: "token", optional: true },
  tokenFile: { env: "METAL_PIXIE_TOKEN_FILE", flag: "token-file", optional: true },
  partition: { env: "METAL_PIXIE_PARTITION_ID", flag: "partition" },
  listen: { env: "METAL_PIXIE_LISTEN", flag: "listen", fallback: "0.0.0.0:8081" },
  /** pixie's URL as machines reach it; needed when --listen names no single address. */
  publicUrl: { env: "METAL_PIXIE_PUBLIC_URL", flag: "public-url", optional: true },
  /** Proxy DHCP and TFTP on the PXE network (dnsmasq); false: only the HTTP side (behind another PXE server). */
  dhcp: { env: "METAL_PIXIE_DHCP", flag: "dhcp", fallback: "true" },
  iface: { env: "METAL_PIXIE_INTERFACE", flag: "interface", optional: true },
  network: { env: "METAL_PIXIE_DHCP_NETWORK", flag: "dhcp-network", optional: true },
  ipxeDir: { env: "METAL_PIXIE_IPXE_DIR", flag: "ipxe-dir", fallback: "/usr/lib/ipxe" },
  stateDir: { env: "METAL_PIXIE_STATE_DIR", flag: "state-dir", fallback: "/var/lib/pixie" },
  dnsmasq: { env: "METAL_PIXIE_DNSMASQ", flag: "dnsmasq", fallback: "dnsmasq" },
} as const;

export interface PixieConfig {
  apiUrl: string;
  token: string;
  partition: string;
  host: string;
  port: number;
  /** pixie's URL as machines reach it; undefined: each request's Host header. */
  publicUrl?: string;
  dhcp?: { iface: string; network: string; ipxeDir: string; stateDir: string; dnsmasq: string };
}

export const describePixieSettings = (): string => `${describeSettings(settings)}\n  --no-dhcp        the same as --dhcp=false`;

/** Throws with a message fit for the operator on anything missing or malformed. */
export function loadPixieConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): PixieConfig {
  const args = argv.map((a) => (a === "--no-dhcp" ? "--dhcp=false" : a));
  const { get, optional, url, hostPort, bool } = readSettings(settings, env, args);
  const tokenFile = optional("tokenFile");
  const token = optional("token") ?? (tokenFile === undefined ? undefined : readFileSync(tokenFile, "utf8").trim());
  if (!token) throw new Error("--token ($METAL_PIXIE_TOKEN) or --token-file ($METAL_PIXIE_TOKEN_FILE) is required: the partition's infra token");
  const listen = parseHostPort(hostPort("listen"));
  const publicUrl = optional("publicUrl") === undefined ? undefined : url("publicUrl", ["http:"]).replace(/\/+$/, "");
  const config: PixieConfig = { apiUrl: url("apiUrl", ["http:", "https:"]), token, partition: get("partition"), host: listen.host || "0.0.0.0", port: listen.port, publicUrl };
  if (!bool("dhcp")) return config;
  const iface = optional("iface");
  const network = optional("network");
  if (!iface || !network) throw new Error("proxy DHCP needs --interface ($METAL_PIXIE_INTERFACE) and --dhcp-network ($METAL_PIXIE_DHCP_NETWORK), or --no-dhcp");
  if (isIP(network) !== 4) throw new Error(`--dhcp-network ($METAL_PIXIE_DHCP_NETWORK) must be an IPv4 address of the PXE network, not "${network}"`);
  // dnsmasq hands iPXE a URL: it needs an address machines reach, which a wildcard listen address is not.
  const wildcard = listen.host === "" || listen.host === "0.0.0.0" || listen.host === "::";
  if (!publicUrl && (wildcard || listen.port === 0))
    throw new Error("proxy DHCP hands machines pixie's URL: set --public-url ($METAL_PIXIE_PUBLIC_URL), or --listen on the PXE network's address and a fixed port");
  return { ...config, dhcp: { iface, network, ipxeDir: get("ipxeDir"), stateDir: get("stateDir"), dnsmasq: get("dnsmasq") } };
}

/** pixie on a partition's PXE network, until SIGINT/SIGTERM. */
export async function runPixie(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(
      `pixie: the partition's PXE boot service: proxy DHCP and TFTP (dnsmasq) hand machines iPXE,\nand its HTTP server their boot scripts from the control plane\n\n${describePixieSettings()}\n`,
    );
    return 0;
  }
  let config: PixieConfig;
  try {
    config = loadPixieConfig(process.env, argv);
  } catch (err) {
    process.stderr.write(`pixie: ${(err as Error).message}\n`);
    return 2;
  }
  const log = jsonLog;
  const transport = createTransport({ baseUrl: config.apiUrl, token: config.token });
  const http = await startPixie({ transport, partition: config.partition, log, publicUrl: config.publicUrl }, config.host, config.port).catch((err: Error) => err);
  if (http instanceof Error) {
    process.stderr.write(`pixie: cannot listen on ${formatHostPort({ host: config.host, port: config.port })}: ${http.message}\n`);
    return 1;
  }
  const base = config.publicUrl ?? http.url;
  let dnsmasq: { close: () => Promise<void> } | undefined;
  if (config.dhcp) {
    try {
      dnsmasq = superviseDnsmasq({ ...config.dhcp, bootScriptUrl: `${base}/ipxe/boot.ipxe`, command: [config.dhcp.dnsmasq], log });
    } catch (err) {
      process.stderr.write(`pixie: ${(err as Error).message}\n`);
      await http.close();
      return 1;
    }
  }
  log("pixie: serving", { url: http.url, bootScript: `${base}/ipxe/boot.ipxe`, partition: config.partition, dhcp: config.dhcp ? { iface: config.dhcp.iface, network: config.dhcp.network } : false });
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => resolve());
  });
  await dnsmasq?.close();
  await http.close();
  return 0;
}
