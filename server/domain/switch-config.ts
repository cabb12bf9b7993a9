import { contains, formatPrefix, type Prefix, parseAddress, parsePrefix } from "./ip-math.js";
import { NetworkKind } from "./network.js";

/**
 * A switch's desired configuration, computed from what the database says
 * about its ports: the port VRF of each cabled machine (machine_connections),
 * the operator's port toggles, and the machines' allocations for the route
 * filters. Pure, so that what a leaf is told can be checked without a switch.
 */

export type PortMode = "pxe" | "tenant" | "firewall";

export interface DesiredPort {
  name: string;
  mode: PortMode;
  /** "vrf<N>", "default", or "" for PXE ports. */
  vrf: string;
  /** The tenant VRF's layer-3 VNI; 0 for other modes. */
  vni: number;
  bgpUnnumbered: boolean;
  adminUp: boolean;
  machineId: string;
  /** What the machine may announce (its route filter); sorted, compacted. */
  allowedPrefixes: string[];
  /** VNIs whose routes a firewall may see; sorted. */
  allowedVnis: number[];
}

export interface DesiredSwitchConfig {
  switchId: string;
  generation: number;
  ports: DesiredPort[];
}

export interface SwitchConfigInput {
  switchId: string;
  /** The switch row's version: every change of the inputs below bumps it. */
  generation: number;
  nics: readonly { name: string; desired?: "up" | "down"; actual?: "up" | "down" | "unknown" }[];
  connections: readonly { port: string; machineId: string; vrf: string | null }[];
  /** Allocations of the cabled machines; absent or null for free machines. */
  allocations: ReadonlyMap<string, AllocationView | null>;
  /** The networks the allocations use: their kind and prefixes. */
  networks: ReadonlyMap<string, { kind: number; prefixes: readonly string[] }>;
}

export interface AllocationView {
  role: "machine" | "firewall";
  networks: readonly { network: string; ips: readonly string[]; vrf: number }[];
}

/** "vrf42" -> 42; undefined for anything that is not a tenant VRF name. */
export function vniOfVrf(vrf: string): number | undefined {
  const m = /^vrf(\d{1,8})$/.exec(vrf);
  return m ? Number(m[1]) : undefined;
}

export function computeSwitchConfig(input: SwitchConfigInput): DesiredSwitchConfig {
  const byPort = new Map(input.connections.map((c) => [c.port, c]));
  const ports = input.nics.map((nic): DesiredPort => {
    // A pending toggle wins; otherwise the port stays as metal-core last confirmed it,
    // so clearing `desired` once it is reached changes nothing here.
    const adminUp = (nic.desired ?? (nic.actual === "down" ? "down" : "up")) === "up";
    const base: DesiredPort = { name: nic.name, mode: "pxe", vrf: "", vni: 0, bgpUnnumbered: false, adminUp, machineId: "", allowedPrefixes: [], allowedVnis: [] };
    const c = byPort.get(nic.name);
    if (!c) return base;
    base.machineId = c.machineId;
    // The port VRF is the truth for the mode: it is set when the installation
    // succeeded and cleared on free/reinstall, independently of the allocation.
    if (c.vrf === null || c.vrf === "") return base;
    const allocation = input.allocations.get(c.machineId) ?? null;
    if (c.vrf === "default") {
      const f = allocation ? firewallFilter(allocation, input.networks) : { prefixes: [], vnis: [] };
      return { ...base, mode: "firewall", vrf: "default", bgpUnnumbered: true, allowedPrefixes: f.prefixes, allowedVnis: f.vnis };
    }
    const vni = vniOfVrf(c.vrf) ?? 0;
    return { ...base, mode: "tenant", vrf: c.vrf, vni, bgpUnnumbered: true, allowedPrefixes: allocation ? machineFilter(allocation, input.networks) : [] };
  });
  return { switchId: input.switchId, generation: input.generation, ports };
}

/**
 * A tenant machine may announce its private networks' prefixes and its own
 * addresses elsewhere (e.g. public IPs) as host routes. Addresses inside an
 * allowed prefix add nothing. Underlay networks never reach a tenant port.
 */
export function machineFilter(a: AllocationView, networks: SwitchConfigInput["networks"]): string[] {
  const allowed: Prefix[] = [];
  for (const n of a.networks) {
    const net = networks.get(n.network);
    if (!net || net.kind === NetworkKind.UNDERLAY) continue;
    if (net.kind === NetworkKind.CHILD || net.kind === NetworkKind.CHILD_SHARED) {
      for (const p of net.prefixes) {
        const parsed = parsePrefix(p, false);
        if (typeof parsed !== "string") allowed.push(parsed);
      }
    }
  }
  for (const n of a.networks) {
    const net = networks.get(n.network);
    if (net?.kind === NetworkKind.UNDERLAY) continue;
    for (const ip of n.ips) {
      const host = hostPrefix(ip);
      if (host) allowed.push(host);
    }
  }
  return compact(allowed);
}

/** A firewall receives the routes of every VNI it is attached to and announces only its underlay addresses. */
export function firewallFilter(a: AllocationView, networks: SwitchConfigInput["networks"]): { prefixes: string[]; vnis: number[] } {
  const vnis = new Set<number>();
  const hosts: Prefix[] = [];
  for (const n of a.networks) {
    const net = networks.get(n.network);
    if (net?.kind === NetworkKind.UNDERLAY) {
      for (const ip of n.ips) {
        const host = hostPrefix(ip);
        if (host) hosts.push(host);
      }
    } else if (n.vrf > 0) vnis.add(n.vrf);
  }
  return { prefixes: compact(hosts), vnis: [...vnis].sort((x, y) => x - y) };
}

function hostPrefix(ip: string): Prefix | undefined {
  const a = parseAddress(ip);
  return a && { family: a.family, network: a.value, length: a.family === 4 ? 32 : 128 };
}

/** Sorted (IPv4 first, then by address and length), without duplicates or prefixes inside others. */
export function compact(prefixes: readonly Prefix[]): string[] {
  const sorted = [...prefixes].sort((x, y) => x.family - y.family || (x.network < y.network ? -1 : x.network > y.network ? 1 : x.length - y.length));
  const out: Prefix[] = [];
  for (const p of sorted) {
    if (out.some((o) => contains(o, p))) continue;
    out.push(p);
  }
  return out.map(formatPrefix);
}

/** Ports whose desired admin state metal-core has now confirmed: their pending toggle is done. */
export function confirmToggles<N extends { name: string; desired?: "up" | "down"; actual?: "up" | "down" | "unknown" }>(
  nics: readonly N[],
  reported: ReadonlyMap<string, "up" | "down" | "unknown">,
): { nics: N[]; changed: boolean } {
  let changed = false;
  const out = nics.map((n) => {
    const actual = reported.get(n.name);
    if (actual === undefined) return n;
    const next = { ...n, actual };
    if (next.desired !== undefined && next.desired === actual) delete next.desired;
    if (next.actual !== n.actual || next.desired !== n.desired) changed = true;
    return next;
  });
  return { nics: out, changed };
}
