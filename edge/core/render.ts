import type { DesiredConfig, LocalSettings, PortConfig } from "./config.js";

/**
 * Renders the two files a Cumulus-style leaf runs on: frr.conf (BGP
 * unnumbered to machines and firewalls, tenant VRFs with their VNIs, route
 * filters) and an ifupdown2 interfaces file (PXE VLAN access ports, VRF
 * ports, shut ports). Pure: the same config and settings give the same text.
 */

export interface Rendered {
  frr: string;
  interfaces: string;
  /** Local VLAN of each tenant VNI (the SVI that carries the L3 VNI). */
  vlans: Map<number, number>;
}

/** Local VLANs for L3 VNIs come from this range (as in the original); the PXE VLAN must lie outside. */
export const VRF_VLAN_RANGE = { first: 1001, last: 2000 } as const;

/** MTUs as in the original: machines 9000, routed fabric/firewall ports 9216. */
const MTU_MACHINE = 9000;
const MTU_ROUTED = 9216;

export const pxeVni = (vlan: number) => 100000 + vlan;

const isV6 = (prefix: string) => prefix.includes(":");

/**
 * Keeps the VLAN of every VNI that still exists (a VRF whose VLAN changed
 * would flap), and gives new VNIs the lowest free ones.
 */
export function assignVlans(vnis: readonly number[], previous: ReadonlyMap<number, number>): Map<number, number> {
  const wanted = [...new Set(vnis)].sort((a, b) => a - b);
  const out = new Map<number, number>();
  const used = new Set<number>();
  for (const vni of wanted) {
    const vlan = previous.get(vni);
    if (vlan !== undefined && vlan >= VRF_VLAN_RANGE.first && vlan <= VRF_VLAN_RANGE.last && !used.has(vlan)) {
      out.set(vni, vlan);
      used.add(vlan);
    }
  }
  let next: number = VRF_VLAN_RANGE.first;
  for (const vni of wanted) {
    if (out.has(vni)) continue;
    while (used.has(next)) next++;
    // Past the range: validation refuses it rather than reusing a VLAN.
    out.set(vni, next);
    used.add(next);
  }
  return out;
}

/** The VLAN of each tenant VNI as an interfaces file rendered by this module records it. */
export function vlansFromInterfaces(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const block of text.split(/\n(?=auto )/)) {
    const vni = /^\s+vxlan-id (\d+)$/m.exec(block);
    const vlan = /^\s+bridge-access (\d+)$/m.exec(block);
    // The PXE VNI is bridged too, but its VLAN is a setting, not an assignment.
    const assigned = vlan !== null && Number(vlan[1]) >= VRF_VLAN_RANGE.first && Number(vlan[1]) <= VRF_VLAN_RANGE.last;
    if (vni && assigned && /^iface vni\d+$/m.test(block)) out.set(Number(vni[1]), Number(vlan[1]));
  }
  return out;
}

/** Ports by role; shut ports are only shut, uplinks never come from the control plane. */
export function classify(config: DesiredConfig, settings: LocalSettings) {
  const uplinks = new Set(settings.uplinks);
  const front = config.ports.filter((p) => !uplinks.has(p.name));
  const up = front.filter((p) => p.adminUp);
  return {
    down: front.filter((p) => !p.adminUp),
    pxe: up.filter((p) => p.mode === "pxe"),
    tenant: up.filter((p) => p.mode === "tenant"),
    firewall: up.filter((p) => p.mode === "firewall"),
  };
}

/** Tenant VRFs and their ports, by VRF name. */
function tenantVrfs(ports: readonly PortConfig[]): Map<string, { vni: number; ports: PortConfig[] }> {
  const out = new Map<string, { vni: number; ports: PortConfig[] }>();
  for (const p of [...ports].sort((a, b) => a.vni - b.vni || a.name.localeCompare(b.name, "en", { numeric: true }))) {
    const v = out.get(p.vrf) ?? { vni: p.vni, ports: [] };
    v.ports.push(p);
    out.set(p.vrf, v);
  }
  return out;
}

export function render(config: DesiredConfig, settings: LocalSettings, previousVlans: ReadonlyMap<number, number> = new Map()): Rendered {
  const c = classify(config, settings);
  const vrfs = tenantVrfs(c.tenant);
  const vlans = assignVlans(
    [...vrfs.values()].map((v) => v.vni),
    previousVlans,
  );
  return { frr: renderFrr(settings, c, vrfs), interfaces: renderInterfaces(settings, c, vrfs, vlans), vlans };
}

type Classes = ReturnType<typeof classify>;
type Vrfs = ReturnType<typeof tenantVrfs>;

function renderInterfaces(s: LocalSettings, c: Classes, vrfs: Vrfs, vlans: Map<number, number>): string {
  const out: string[] = [`# Rendered by metal-core for ${s.hostname}. Do not edit: the next sync overwrites it.`, ""];
  const iface = (name: string, lines: string[], head = `iface ${name}`) => out.push(`auto ${name}`, head, ...lines.map((l) => `    ${l}`), "");
  iface("lo", [`address ${s.loopback}/32`], "iface lo inet loopback");
  for (const u of s.uplinks) iface(u, [`mtu ${MTU_ROUTED}`, "# uplink to the spines"]);
  for (const p of c.pxe) iface(p.name, [`mtu ${MTU_MACHINE}`, `bridge-access ${s.pxeVlan}`, ...machineComment(p, "PXE")]);
  for (const [vrf, v] of vrfs) for (const p of v.ports) iface(p.name, [`mtu ${MTU_MACHINE}`, `vrf ${vrf}`, ...machineComment(p, `tenant VRF ${vrf}`)]);
  for (const p of c.firewall) iface(p.name, [`mtu ${MTU_ROUTED}`, ...machineComment(p, "firewall, default VRF")]);
  for (const p of c.down) iface(p.name, ["link-down yes", ...machineComment(p, "shut by an operator")]);

  const pxe = pxeVni(s.pxeVlan);
  const vniNames = [...vrfs.values()].map((v) => `vni${v.vni}`);
  iface("bridge", [
    `bridge-ports ${[...c.pxe.map((p) => p.name), `vni${pxe}`, ...vniNames].join(" ")}`,
    `bridge-vids ${[s.pxeVlan, ...[...vrfs.values()].map((v) => vlans.get(v.vni)!)].join(" ")}`,
    "bridge-vlan-aware yes",
  ]);
  iface(`vlan${s.pxeVlan}`, [`mtu ${MTU_MACHINE}`, `address ${s.pxeCidr}`, `vlan-id ${s.pxeVlan}`, "vlan-raw-device bridge"]);
  iface(`vni${pxe}`, [`mtu ${MTU_MACHINE}`, `bridge-access ${s.pxeVlan}`, "bridge-learning off", "mstpctl-bpduguard yes", "mstpctl-portbpdufilter yes", `vxlan-id ${pxe}`, `vxlan-local-tunnelip ${s.loopback}`]);
  for (const [vrf, v] of vrfs) {
    const vlan = vlans.get(v.vni)!;
    iface(vrf, [`mtu ${MTU_ROUTED}`, "vrf-table auto"]);
    iface(`vlan${vlan}`, [`mtu ${MTU_MACHINE}`, `vlan-id ${vlan}`, "vlan-raw-device bridge", `vrf ${vrf}`]);
    iface(`vni${v.vni}`, [
      `mtu ${MTU_MACHINE}`,
      `bridge-access ${vlan}`,
      "bridge-arp-nd-suppress on",
      "bridge-learning off",
      "mstpctl-bpduguard yes",
      "mstpctl-portbpdufilter yes",
      `vxlan-id ${v.vni}`,
      `vxlan-local-tunnelip ${s.loopback}`,
    ]);
  }
  return out.join("\n");
}

const machineComment = (p: PortConfig, what: string) => [`# ${what}${p.machineId ? `, machine ${p.machineId}` : ""}`];

/** Route-map and prefix-list names of a port; one set per port, so a machine can announce only what is its own. */
export const filterNames = (port: string) => ({
  in4: `${port}-in`,
  in6: `${port}-in6`,
  list4: `${port}-in-pl`,
  list6: `${port}-in6-pl`,
  fwIn: `fw-${port}-in`,
  fwList: `fw-${port}-in-pl`,
  fwVni: `fw-${port}-vni`,
});

function renderFrr(s: LocalSettings, c: Classes, vrfs: Vrfs): string {
  const out: string[] = [
    `! Rendered by metal-core for ${s.hostname}. Do not edit: the next sync overwrites it.`,
    "frr defaults datacenter",
    `hostname ${s.hostname}`,
    "log syslog informational",
    "service integrated-vtysh-config",
    "!",
  ];
  for (const [vrf, v] of vrfs) out.push(`vrf ${vrf}`, ` vni ${v.vni}`, "exit-vrf", "!");
  // Router advertisements every 6 s let the peers find each other's link-local address (BGP unnumbered).
  for (const p of [...s.uplinks.map((name) => ({ name, machineId: "" })), ...c.firewall, ...[...vrfs.values()].flatMap((v) => v.ports)]) {
    out.push(`interface ${p.name}`, " ipv6 nd ra-interval 6", " no ipv6 nd suppress-ra", "exit", "!");
  }

  out.push(`router bgp ${s.asn}`, ` bgp router-id ${s.loopback}`, " bgp bestpath as-path multipath-relax");
  const group = (name: string) => out.push(` neighbor ${name} peer-group`, ` neighbor ${name} remote-as external`, ` neighbor ${name} timers 2 8`);
  group("FABRIC");
  for (const u of s.uplinks) out.push(` neighbor ${u} interface peer-group FABRIC`);
  if (c.firewall.length > 0) {
    group("FIREWALL");
    for (const p of c.firewall) out.push(` neighbor ${p.name} interface peer-group FIREWALL`);
  }
  out.push(" !", " address-family ipv4 unicast", "  redistribute connected route-map LOOPBACKS", "  neighbor FABRIC allowas-in 2");
  if (c.firewall.length > 0) out.push("  neighbor FIREWALL allowas-in 2");
  for (const p of c.firewall) out.push(`  neighbor ${p.name} route-map ${filterNames(p.name).fwIn} in`);
  out.push(" exit-address-family", " !", " address-family l2vpn evpn", "  advertise-all-vni", "  neighbor FABRIC activate", "  neighbor FABRIC allowas-in 2");
  if (c.firewall.length > 0) out.push("  neighbor FIREWALL activate", "  neighbor FIREWALL allowas-in 2");
  for (const p of c.firewall) out.push(`  neighbor ${p.name} route-map ${filterNames(p.name).fwVni} out`);
  out.push(" exit-address-family", "exit", "!");

  for (const [vrf, v] of vrfs) {
    out.push(`router bgp ${s.asn} vrf ${vrf}`, ` bgp router-id ${s.loopback}`, " bgp bestpath as-path multipath-relax");
    group("MACHINE");
    for (const p of v.ports) out.push(` neighbor ${p.name} interface peer-group MACHINE`);
    out.push(" !", " address-family ipv4 unicast", "  redistribute connected", "  neighbor MACHINE maximum-prefix 24000");
    for (const p of v.ports) out.push(`  neighbor ${p.name} route-map ${filterNames(p.name).in4} in`);
    out.push(" exit-address-family", " !", " address-family ipv6 unicast", "  redistribute connected", "  neighbor MACHINE activate", "  neighbor MACHINE maximum-prefix 24000");
    for (const p of v.ports) out.push(`  neighbor ${p.name} route-map ${filterNames(p.name).in6} in`);
    out.push(" exit-address-family", " !", " address-family l2vpn evpn", "  advertise ipv4 unicast", "  advertise ipv6 unicast", " exit-address-family", "exit", "!");
  }

  // Filters: a machine may announce its prefixes and anything more specific inside them.
  for (const p of [...vrfs.values()].flatMap((v) => v.ports)) {
    const n = filterNames(p.name);
    const v4 = p.allowedPrefixes.filter((x) => !isV6(x));
    const v6 = p.allowedPrefixes.filter(isV6);
    v4.forEach((x, i) => out.push(`ip prefix-list ${n.list4} seq ${(i + 1) * 10} permit ${x}${orLonger(x, 32)}`));
    v6.forEach((x, i) => out.push(`ipv6 prefix-list ${n.list6} seq ${(i + 1) * 10} permit ${x}${orLonger(x, 128)}`));
    routeMap(out, n.in4, v4.length > 0 ? `match ip address prefix-list ${n.list4}` : undefined);
    routeMap(out, n.in6, v6.length > 0 ? `match ipv6 address prefix-list ${n.list6}` : undefined);
  }
  for (const p of c.firewall) {
    const n = filterNames(p.name);
    const v4 = p.allowedPrefixes.filter((x) => !isV6(x));
    v4.forEach((x, i) => out.push(`ip prefix-list ${n.fwList} seq ${(i + 1) * 10} permit ${x}`));
    routeMap(out, n.fwIn, v4.length > 0 ? `match ip address prefix-list ${n.fwList}` : undefined);
    if (p.allowedVnis.length === 0) routeMap(out, n.fwVni, undefined);
    p.allowedVnis.forEach((vni, i) => out.push(`route-map ${n.fwVni} permit ${(i + 1) * 10}`, ` match evpn vni ${vni}`, "exit"));
    out.push("!");
  }
  out.push("route-map LOOPBACKS permit 10", " match interface lo", "exit", "!", "line vty", "!", "");
  return out.join("\n");
}

/** Host routes match only themselves; FRR refuses "le" equal to the length on some versions. */
const orLonger = (prefix: string, max: number) => (Number(prefix.slice(prefix.indexOf("/") + 1)) < max ? ` le ${max}` : "");

/** Nothing to allow is an explicit deny (FRR denies unmatched routes anyway; this keeps the intent visible). */
function routeMap(out: string[], name: string, match: string | undefined): void {
  if (match === undefined) out.push(`route-map ${name} deny 10`, "exit");
  else out.push(`route-map ${name} permit 10`, ` ${match}`, "exit");
  out.push("!");
}
