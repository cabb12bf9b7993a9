import { parseHostPort } from "../../client/host-port.js";

/**
 * The one interface metal-bmc uses to talk to a BMC. The IPMI implementation
 * shells out to ipmitool; the simulated partition (edge/sim/bmc.ts)
 * implements the same interface, so the agent code runs unchanged on both.
 */

/** The commands the control plane sends (the names stored in its bmc_commands rows). */
export const BMC_COMMANDS = ["POWER_ON", "POWER_OFF", "RESET", "CYCLE", "BOOT_FROM_BIOS", "BOOT_FROM_DISK", "BOOT_FROM_PXE", "LED_ON", "LED_OFF"] as const;
export type BmcCommandName = (typeof BMC_COMMANDS)[number];

export const isBmcCommand = (s: string): s is BmcCommandName => (BMC_COMMANDS as readonly string[]).includes(s);

/** How to reach one BMC. */
export interface BmcTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** "lanplus" for IPMI 2.0. */
  interface: string;
}

/** What a BMC tells about itself and its machine. */
export interface BmcInfo {
  /** The machine's system UUID, which is its machine id in metal. */
  uuid: string;
  /** The BMC firmware version. */
  firmware: string;
  powerState: "ON" | "OFF" | "UNKNOWN";
  fru: Record<string, string>;
  biosVersion?: string;
}

export interface BmcAdapter {
  /** Reads the BMC; rejects when it does not answer. */
  query(target: BmcTarget, signal?: AbortSignal): Promise<BmcInfo>;
  /**
   * The machine UUID the BMC reports (its system GUID), lowercased; rejects
   * when the BMC does not answer or reports none. Cheaper than query: it is
   * asked before every command.
   */
  identify(target: BmcTarget, signal?: AbortSignal): Promise<string>;
  /** Carries the command out; resolves with a human-readable result, rejects with the BMC's error. */
  execute(target: BmcTarget, command: BmcCommandName, signal?: AbortSignal): Promise<string>;
}

/** "host:port" or "host" (IPMI's port 623); IPv6 in brackets. Throws HostPortError on anything else. */
export function parseAddress(address: string, defaultPort = 623): { host: string; port: number } {
  const { host, port } = parseHostPort(address, { defaultPort });
  return { host, port };
}

/**
 * Why a command for `expected` must not run on the BMC at `address`, which
 * reports `reported`; undefined when they are the same machine. A stored BMC
 * address can point at another machine's BMC (a stale record after a hardware
 * swap, a DHCP re-lease), and a power command there hits a stranger.
 */
export function identityMismatch(expected: string, reported: string, address: string): string | undefined {
  if (reported !== "" && reported.toLowerCase() === expected.toLowerCase()) return undefined;
  return `the BMC at ${address} reports machine ${reported === "" ? "(no UUID)" : reported.toLowerCase()}, expected machine ${expected.toLowerCase()}`;
}
