import { type SwitchConfig as ProtoSwitchConfig, SwitchPortAdminState, SwitchPortMode } from "../../gen/metal/infra/v1/switch_pb.js";

export type PortMode = "pxe" | "tenant" | "firewall";

/** One front port as the control plane wants it. */
export interface PortConfig {
  name: string;
  mode: PortMode;
  vrf: string;
  vni: number;
  bgpUnnumbered: boolean;
  adminUp: boolean;
  machineId: string;
  allowedPrefixes: string[];
  allowedVnis: number[];
}

/** The switch's full desired config, as the session delivers it. */
export interface DesiredConfig {
  generation: number;
  switchId: string;
  ports: PortConfig[];
}

/** What only the switch knows about itself (its place in the fabric); from flags, not from the control plane. */
export interface LocalSettings {
  hostname: string;
  asn: number;
  /** Loopback address: BGP router id and VXLAN tunnel source. */
  loopback: string;
  /** The PXE/discovery VLAN; its SVI carries `pxeCidr` (the DHCP relay and pixie target). */
  pxeVlan: number;
  pxeCidr: string;
  /** Ports towards the spines, peered in the underlay; never machine ports. */
  uplinks: string[];
}

export const DEFAULT_SETTINGS: Omit<LocalSettings, "hostname"> = {
  asn: 4200000011,
  loopback: "10.0.0.11",
  pxeVlan: 4000,
  pxeCidr: "10.255.255.1/24",
  uplinks: ["swp31", "swp32"],
};

const MODES: Partial<Record<SwitchPortMode, PortMode>> = {
  [SwitchPortMode.PXE]: "pxe",
  [SwitchPortMode.TENANT]: "tenant",
  [SwitchPortMode.FIREWALL]: "firewall",
};

/** An unknown mode (a newer server) becomes "invalid", which validation refuses rather than guessing. */
export function fromProto(c: ProtoSwitchConfig): DesiredConfig {
  return {
    generation: Number(c.generation),
    switchId: c.switchId,
    ports: c.ports.map((p) => ({
      name: p.name,
      mode: MODES[p.mode] ?? ("invalid" as PortMode),
      vrf: p.vrf,
      vni: p.vni,
      bgpUnnumbered: p.bgpUnnumbered,
      adminUp: p.adminState !== SwitchPortAdminState.DOWN,
      machineId: p.machineId,
      allowedPrefixes: [...p.allowedPrefixes],
      allowedVnis: [...p.allowedVnis],
    })),
  };
}
