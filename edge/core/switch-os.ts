/**
 * Everything metal-core needs from the switch and its operating system, so
 * that the same daemon code runs on a real leaf (linux-switch.ts) and on a
 * simulated one (edge/sim/switch.ts).
 */

export interface SwitchPort {
  name: string;
  /** How machines see the port by LLDP (often its MAC); empty: the name. */
  identifier: string;
}

export interface SwitchFacts {
  /** The host name, which is the switch id. */
  id: string;
  osVendor: string;
  osVersion: string;
  managementIp: string;
  /** Front ports, uplinks included (metal-core sorts them out by name). */
  ports: SwitchPort[];
}

export interface PortState {
  /** Whether the port is enabled; undefined when the OS cannot tell. */
  adminUp: boolean | undefined;
  oper: "up" | "down" | "unknown";
}

export interface BgpPeerState {
  port: string;
  neighbor: string;
  peerGroup: string;
  vrf: string;
  state: string;
  establishedSince?: Date;
  sentPrefixes: number;
  acceptedPrefixes: number;
}

/** One LLDP frame received on a front port. */
export interface LldpSighting {
  port: string;
  /** The sender's system name; installed machines send their machine id. */
  sysName: string;
  sysDescription: string;
}

export interface SwitchOs {
  facts(): Promise<SwitchFacts>;
  /** The directory the configuration files live under ("/" on a real switch). */
  readonly root: string;
  /**
   * Checks a candidate file with the NOS's own tools (e.g. FRR's parser);
   * rejects with the checker's message. `kind` tells which file it is.
   */
  check(kind: ConfigKind, path: string): Promise<void>;
  /** Makes the NOS pick up the files now in place; rejects when it cannot. */
  reload(): Promise<void>;
  portStates(): Promise<Map<string, PortState>>;
  bgpPeers(): Promise<BgpPeerState[]>;
  /** The LLDP neighbours known now, one per port (what the newest frame on each port said); gone ones are not listed. */
  lldpSightings(): Promise<LldpSighting[]>;
}

export type ConfigKind = "frr" | "interfaces";

/** Where the files live below the root, as on Cumulus Linux. */
export const CONFIG_PATHS: Record<ConfigKind, string> = {
  frr: "etc/frr/frr.conf",
  interfaces: "etc/network/interfaces",
};
