import { isIP } from "node:net";
import type { DesiredConfig, LocalSettings } from "./config.js";
import { type Rendered, VRF_VLAN_RANGE } from "./render.js";

/**
 * Structural checks of a desired config and its rendering, before anything
 * touches the switch. They catch what the NOS's own parser would accept but
 * would break the fabric (a port in two places, a VRF without its VNI, a
 * route-map that is referenced but never defined). Returns the problems.
 */
export function validateConfig(config: DesiredConfig, settings: LocalSettings, rendered: Rendered): string[] {
  const problems: string[] = [];
  const add = (m: string) => problems.push(m);
  if (!Number.isInteger(settings.pxeVlan) || settings.pxeVlan < 1 || settings.pxeVlan > 4094) add(`PXE VLAN ${settings.pxeVlan} is not a VLAN id`);
  if (settings.pxeVlan >= VRF_VLAN_RANGE.first && settings.pxeVlan <= VRF_VLAN_RANGE.last) {
    add(`PXE VLAN ${settings.pxeVlan} lies in the range of VRF VLANs (${VRF_VLAN_RANGE.first}-${VRF_VLAN_RANGE.last})`);
  }
  const uplinks = new Set(settings.uplinks);
  const seen = new Set<string>();
  for (const p of config.ports) {
    const at = `port ${p.name}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(p.name)) add(`${at}: not a valid interface name`);
    if (seen.has(p.name)) add(`${at}: listed twice`);
    seen.add(p.name);
    if (uplinks.has(p.name) && p.machineId !== "") add(`${at}: is an uplink, but machine ${p.machineId} is said to be on it`);
    for (const x of p.allowedPrefixes) if (!isPrefix(x)) add(`${at}: allowed prefix "${x}" is not a CIDR prefix`);
    for (const v of p.allowedVnis) if (!validVni(v)) add(`${at}: allowed VNI ${v} is out of range`);
    switch (p.mode) {
      case "pxe":
        if (p.vrf !== "") add(`${at}: a PXE port cannot be in VRF "${p.vrf}"`);
        break;
      case "tenant": {
        const m = /^vrf(\d+)$/.exec(p.vrf);
        if (!m) add(`${at}: tenant VRF "${p.vrf}" is not named vrf<N>`);
        else if (Number(m[1]) !== p.vni) add(`${at}: VRF ${p.vrf} must carry VNI ${m[1]}, not ${p.vni}`);
        if (!validVni(p.vni)) add(`${at}: VNI ${p.vni} is out of range (1-16777215)`);
        if (!p.bgpUnnumbered) add(`${at}: a tenant port needs BGP unnumbered`);
        break;
      }
      case "firewall":
        if (p.vrf !== "default") add(`${at}: a firewall port must be in the default VRF, not "${p.vrf}"`);
        break;
      default:
        add(`${at}: unknown mode "${String(p.mode)}"`);
    }
  }
  for (const [vni, vlan] of rendered.vlans) if (vlan > VRF_VLAN_RANGE.last) add(`no VLAN left in ${VRF_VLAN_RANGE.first}-${VRF_VLAN_RANGE.last} for VNI ${vni}`);
  problems.push(...checkInterfaces(rendered.interfaces), ...checkFrr(rendered.frr));
  return problems;
}

const validVni = (v: number) => Number.isInteger(v) && v >= 1 && v <= 16_777_215;

function isPrefix(s: string): boolean {
  const [addr, len, extra] = s.split("/");
  if (extra !== undefined || addr === undefined || len === undefined || !/^\d{1,3}$/.test(len)) return false;
  const family = isIP(addr);
  return family !== 0 && Number(len) <= (family === 4 ? 32 : 128);
}

/** Each interface once; a port either bridged or in a VRF; every VRF referenced exists. */
export function checkInterfaces(text: string): string[] {
  const problems: string[] = [];
  const blocks = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.split("\n")) {
    const head = /^iface (\S+)/.exec(line);
    if (head) {
      if (blocks.has(head[1]!)) problems.push(`interfaces: iface ${head[1]} is defined twice`);
      current = [];
      blocks.set(head[1]!, current);
    } else if (/^\s+\S/.test(line) && current) current.push(line.trim());
    else if (line.startsWith("auto ")) current = undefined;
  }
  const vrfs = new Set([...blocks].filter(([, lines]) => lines.includes("vrf-table auto")).map(([name]) => name));
  const bridged = new Set(
    (blocks.get("bridge") ?? [])
      .find((l) => l.startsWith("bridge-ports "))
      ?.split(" ")
      .slice(1) ?? [],
  );
  for (const [name, lines] of blocks) {
    const vrf = lines.find((l) => l.startsWith("vrf "))?.slice(4);
    if (vrf !== undefined && !vrfs.has(vrf)) problems.push(`interfaces: ${name} is in VRF ${vrf}, which is not defined`);
    if (vrf !== undefined && bridged.has(name)) problems.push(`interfaces: ${name} is both a bridge port and in VRF ${vrf}`);
    if (lines.includes("link-down yes") && (vrf !== undefined || bridged.has(name))) problems.push(`interfaces: ${name} is shut but still configured`);
  }
  for (const port of bridged) if (!blocks.has(port)) problems.push(`interfaces: bridge port ${port} has no iface`);
  return problems;
}

/** Every route-map and prefix-list that is used is defined; every BGP VRF has its VNI. */
export function checkFrr(text: string): string[] {
  const problems: string[] = [];
  const defined = new Set([...text.matchAll(/^route-map (\S+) (?:permit|deny) \d+$/gm)].map((m) => m[1]!));
  for (const m of text.matchAll(/^\s+neighbor \S+ route-map (\S+) (?:in|out)$/gm)) {
    if (!defined.has(m[1]!)) problems.push(`frr.conf: route-map ${m[1]} is used but not defined`);
  }
  const redistribute = [...text.matchAll(/redistribute connected route-map (\S+)/g)].map((m) => m[1]!);
  for (const r of redistribute) if (!defined.has(r)) problems.push(`frr.conf: route-map ${r} is used but not defined`);
  const lists4 = new Set([...text.matchAll(/^ip prefix-list (\S+) seq/gm)].map((m) => m[1]!));
  const lists6 = new Set([...text.matchAll(/^ipv6 prefix-list (\S+) seq/gm)].map((m) => m[1]!));
  for (const m of text.matchAll(/^\s+match (ipv6|ip) address prefix-list (\S+)$/gm)) {
    if (!(m[1] === "ip" ? lists4 : lists6).has(m[2]!)) problems.push(`frr.conf: ${m[1]} prefix-list ${m[2]} is used but not defined`);
  }
  const vrfVnis = new Map([...text.matchAll(/^vrf (\S+)\n vni (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
  for (const m of text.matchAll(/^router bgp \d+ vrf (\S+)$/gm)) {
    if (!vrfVnis.has(m[1]!)) problems.push(`frr.conf: BGP instance of VRF ${m[1]} without a VNI`);
  }
  if (/undefined|NaN|\[object /.test(text)) problems.push("frr.conf: contains an unrendered value");
  return problems;
}
