import { execFile } from "node:child_process";
import { access, readdir, readFile } from "node:fs/promises";
import { hostname, networkInterfaces } from "node:os";
import { findVtysh, frrDryRun } from "./frr-check.js";
import type { BgpPeerState, ConfigKind, LldpSighting, PortState, SwitchFacts, SwitchOs } from "./switch-os.js";

export interface LinuxSwitchOptions {
  /** "/" on the switch; a directory for a dry run. */
  root: string;
  /** Shell command that makes FRR and ifupdown2 pick up the new files. */
  reloadCommand: string;
  /** Front ports are the interfaces whose names match (Cumulus: swp*). */
  portPattern?: RegExp;
  sysfs?: string;
}

/**
 * A Cumulus-style Linux leaf: ports from sysfs, FRR's and ifupdown2's own
 * syntax checks when installed, a reload command, BGP state from vtysh and
 * LLDP neighbours from lldpd's lldpctl.
 */
export class LinuxSwitch implements SwitchOs {
  readonly root: string;
  private readonly sysfs: string;
  private readonly pattern: RegExp;

  constructor(private readonly opts: LinuxSwitchOptions) {
    this.root = opts.root;
    this.sysfs = opts.sysfs ?? "/sys/class/net";
    this.pattern = opts.portPattern ?? /^swp\d+(s\d+)?$/;
  }

  async facts(): Promise<SwitchFacts> {
    const names = (await readdir(this.sysfs).catch(() => [] as string[])).filter((n) => this.pattern.test(n)).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    const ports = await Promise.all(names.map(async (name) => ({ name, identifier: (await readFile(`${this.sysfs}/${name}/address`, "utf8").catch(() => "")).trim() })));
    const release = await readFile("/etc/lsb-release", "utf8").catch(() => "");
    const eth0 = networkInterfaces().eth0?.find((a) => a.family === "IPv4");
    return {
      id: hostname().split(".")[0]!,
      // This adapter drives ifupdown2 + FRR files, i.e. Cumulus; SONiC would need its config database.
      osVendor: "Cumulus",
      osVersion: /DISTRIB_RELEASE=(\S+)/.exec(release)?.[1] ?? "",
      managementIp: eth0?.address ?? "",
      ports,
    };
  }

  async check(kind: ConfigKind, path: string): Promise<void> {
    if (kind === "frr") {
      await frrDryRun(path);
      return;
    }
    const ifup = await firstExisting(["/sbin/ifup", "/usr/sbin/ifup"]);
    // ifupdown2: -s is a syntax check of the given file, nothing is brought up.
    if (ifup) await run(ifup, ["-a", "-s", "-i", path]);
  }

  async reload(): Promise<void> {
    await run("/bin/sh", ["-c", this.opts.reloadCommand], 60_000);
  }

  async portStates(): Promise<Map<string, PortState>> {
    const out = new Map<string, PortState>();
    for (const p of (await this.facts()).ports) {
      const flags = await readFile(`${this.sysfs}/${p.name}/flags`, "utf8").catch(() => undefined);
      const oper = (await readFile(`${this.sysfs}/${p.name}/operstate`, "utf8").catch(() => "unknown")).trim();
      out.set(p.name, {
        // IFF_UP (0x1) is the administrative state.
        adminUp: flags === undefined ? undefined : (parseInt(flags.trim(), 16) & 1) === 1,
        oper: oper === "up" ? "up" : oper === "down" || oper === "lowerlayerdown" ? "down" : "unknown",
      });
    }
    return out;
  }

  async bgpPeers(): Promise<BgpPeerState[]> {
    const vtysh = await findVtysh();
    if (!vtysh) return [];
    const json = await run(vtysh, ["-c", "show bgp vrf all neighbors json"]).catch(() => "");
    return json ? parseBgpNeighbors(json) : [];
  }

  async lldpSightings(): Promise<LldpSighting[]> {
    const lldpctl = await firstExisting(["/usr/sbin/lldpctl", "/usr/bin/lldpctl"]);
    if (!lldpctl) return [];
    const json = await run(lldpctl, ["-f", "json"]).catch(() => "");
    return json ? parseLldpctl(json) : [];
  }
}

/** `vtysh -c "show bgp vrf all neighbors json"`: {vrf: {neighbor: {...}, vrfName, vrfId}}. */
export function parseBgpNeighbors(json: string, now = Date.now()): BgpPeerState[] {
  const out: BgpPeerState[] = [];
  let doc: Record<string, Record<string, unknown>>;
  try {
    doc = JSON.parse(json);
  } catch {
    return [];
  }
  for (const [vrf, peers] of Object.entries(doc)) {
    if (typeof peers !== "object" || peers === null) continue;
    for (const [port, raw] of Object.entries(peers)) {
      if (typeof raw !== "object" || raw === null) continue;
      const p = raw as Record<string, any>;
      if (typeof p.bgpState !== "string") continue;
      const afi = (p.addressFamilyInfo ?? {}) as Record<string, { acceptedPrefixCounter?: number; sentPrefixCounter?: number }>;
      const sum = (k: "acceptedPrefixCounter" | "sentPrefixCounter") => Object.values(afi).reduce((n, a) => n + (a[k] ?? 0), 0);
      const upMs = typeof p.bgpTimerUpMsec === "number" ? p.bgpTimerUpMsec : undefined;
      out.push({
        port,
        neighbor: typeof p.hostname === "string" ? p.hostname : "",
        peerGroup: typeof p.peerGroup === "string" ? p.peerGroup : "",
        vrf: typeof p.vrfName === "string" ? p.vrfName : vrf,
        state: p.bgpState,
        establishedSince: p.bgpState === "Established" && upMs !== undefined ? new Date(now - upMs) : undefined,
        sentPrefixes: sum("sentPrefixCounter"),
        acceptedPrefixes: sum("acceptedPrefixCounter"),
      });
    }
  }
  return out;
}

/** `lldpctl -f json`: lldp.interface is an object or a list of one-key objects, chassis keyed by system name. */
export function parseLldpctl(json: string): LldpSighting[] {
  let doc: any;
  try {
    doc = JSON.parse(json);
  } catch {
    return [];
  }
  const raw = doc?.lldp?.interface;
  const entries: [string, any][] = Array.isArray(raw) ? raw.flatMap((o: Record<string, unknown>) => Object.entries(o)) : Object.entries(raw ?? {});
  const out: LldpSighting[] = [];
  for (const [port, iface] of entries) {
    for (const [sysName, chassis] of Object.entries((iface?.chassis ?? {}) as Record<string, any>)) {
      const d = chassis?.descr;
      out.push({ port, sysName, sysDescription: typeof d === "string" ? d : typeof d?.value === "string" ? d.value : "" });
    }
  }
  return out;
}

async function firstExisting(paths: readonly string[]): Promise<string | undefined> {
  for (const p of paths)
    if (
      await access(p).then(
        () => true,
        () => false,
      )
    )
      return p;
  return undefined;
}

function run(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd.split("/").pop()} failed: ${(stderr || stdout || err.message).trim().split("\n").slice(0, 5).join("; ")}`));
      else resolve(stdout);
    });
  });
}
