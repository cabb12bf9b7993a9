import { hostname } from "node:os";
import { describeSettings, readSettings } from "../../client/settings.js";
import type { BmcAgentTiming } from "./agent.js";

/** metal-bmc's settings: each an environment variable and the matching `--flag`. */
export interface BmcConfig {
  apiUrl: string;
  token: string;
  partition: string;
  agent: string;
  leaseFile: string;
  stateDir: string;
  ipmi: { user: string; password: string; port: number; interface: string };
  /** Unset: ipmitool negotiates. */
  cipherSuite: number | undefined;
  allowedCidrs: string[];
  ignoreMacs: string[];
  timing: Pick<BmcAgentTiming, "pollMs" | "fullReportMs">;
}

const settings = {
  apiUrl: { env: "METAL_API_URL", flag: "api-url", fallback: "http://127.0.0.1:8080" },
  token: { env: "METAL_BMC_TOKEN", flag: "token" },
  partition: { env: "METAL_BMC_PARTITION_ID", flag: "partition" },
  agent: { env: "METAL_BMC_AGENT", flag: "agent", fallback: hostname() },
  leaseFile: { env: "METAL_BMC_LEASE_FILE", flag: "lease-file", fallback: "/var/lib/dhcp/dhcpd.leases" },
  stateDir: { env: "METAL_BMC_STATE_DIR", flag: "state-dir", fallback: "/var/lib/metal-bmc" },
  ipmiUser: { env: "METAL_BMC_IPMI_USER", flag: "ipmi-user", fallback: "ADMIN" },
  ipmiPassword: { env: "METAL_BMC_IPMI_PASSWORD", flag: "ipmi-password", fallback: "ADMIN" },
  ipmiPort: { env: "METAL_BMC_IPMI_PORT", flag: "ipmi-port", fallback: "623" },
  ipmiInterface: { env: "METAL_BMC_IPMI_INTERFACE", flag: "ipmi-interface", fallback: "lanplus" },
  cipherSuite: { env: "METAL_BMC_IPMI_CIPHER_SUITE", flag: "ipmi-cipher-suite", fallback: "" },
  allowedCidrs: { env: "METAL_BMC_ALLOWED_CIDRS", flag: "allowed-cidrs", fallback: "" },
  ignoreMacs: { env: "METAL_BMC_IGNORE_MACS", flag: "ignore-macs", fallback: "" },
  pollSeconds: { env: "METAL_BMC_POLL_INTERVAL", flag: "poll-interval", fallback: "30" },
  reportSeconds: { env: "METAL_BMC_REPORT_INTERVAL", flag: "report-interval", fallback: "300" },
} as const;

export const describeBmcSettings = (): string => describeSettings(settings, ["METAL_BMC_AGENT"]);

/** Flags win over the environment; throws with a message fit for the user on anything missing or malformed. */
export function loadBmcConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): BmcConfig {
  const { get, seconds, list, int, url } = readSettings(settings, env, argv);
  const port = int("ipmiPort", 1, 65535);
  const cipher = get("cipherSuite");
  if (cipher !== "" && !/^\d{1,2}$/.test(cipher)) throw new Error("--ipmi-cipher-suite must be a cipher suite number, e.g. 3 or 17");
  return {
    apiUrl: url("apiUrl", ["http:", "https:"]),
    token: get("token"),
    partition: get("partition"),
    agent: get("agent"),
    leaseFile: get("leaseFile"),
    stateDir: get("stateDir"),
    ipmi: { user: get("ipmiUser"), password: get("ipmiPassword"), port, interface: get("ipmiInterface") },
    cipherSuite: cipher === "" ? undefined : Number(cipher),
    allowedCidrs: list("allowedCidrs"),
    ignoreMacs: list("ignoreMacs"),
    timing: { pollMs: seconds("pollSeconds"), fullReportMs: seconds("reportSeconds") },
  };
}
