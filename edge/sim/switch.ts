import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { frrDryRun } from "../core/frr-check.js";
import { type BgpPeerState, CONFIG_PATHS, type ConfigKind, type LldpSighting, type PortState, type SwitchFacts, type SwitchOs } from "../core/switch-os.js";

/** A port as the simulated switch runs it after its last reload. */
export interface RunningPort {
  vrf?: string;
  /** Access VLAN (the PXE VLAN for PXE ports). */
  access?: number;
  down: boolean;
}

export interface SimSwitchOptions {
  id: string;
  /** Scratch directory standing in for the switch's root file system. */
  root: string;
  /** Front ports swp1..swpN (default 8); the uplinks swp31, swp32 come on top. */
  frontPorts?: number;
  osVendor?: string;
  osVersion?: string;
  managementIp?: string;
  /** Also run FRR's own parser on frr.conf when FRR is installed (default true). */
  frrCheck?: boolean;
}

/**
 * A leaf switch for metal-core to run on without hardware: its config files
 * live in a scratch directory, a reload reads the interfaces file and makes
 * it the running state, and machines are "cabled" by setting what they send
 * by LLDP. Faults can be injected for the next check or reload.
 */
export class SimSwitch implements SwitchOs {
  readonly root: string;
  private readonly opts: Required<Omit<SimSwitchOptions, "root">>;
  private readonly neighbours = new Map<string, { sysName: string; sysDescription: string }>();
  private running: Map<string, RunningPort> | undefined;
  private rejectCheck: string | undefined;
  private failReload: string | undefined;
  reloads = 0;

  constructor(opts: SimSwitchOptions) {
    this.root = opts.root;
    this.opts = { frontPorts: 8, osVendor: "Cumulus", osVersion: "5.9.1", managementIp: "192.168.0.11", frrCheck: true, ...opts };
  }

  get portNames(): string[] {
    return [...Array.from({ length: this.opts.frontPorts }, (_, i) => `swp${i + 1}`), "swp31", "swp32"];
  }

  async facts(): Promise<SwitchFacts> {
    return {
      id: this.opts.id,
      osVendor: this.opts.osVendor,
      osVersion: this.opts.osVersion,
      managementIp: this.opts.managementIp,
      ports: this.portNames.map((name) => ({ name, identifier: name })),
    };
  }

  async check(kind: ConfigKind, path: string): Promise<void> {
    if (this.rejectCheck !== undefined) {
      const why = this.rejectCheck;
      this.rejectCheck = undefined;
      throw new Error(why);
    }
    if (kind === "frr" && this.opts.frrCheck) await frrDryRun(path);
  }

  async reload(): Promise<void> {
    this.reloads++;
    if (this.failReload !== undefined) {
      const why = this.failReload;
      this.failReload = undefined;
      throw new Error(why);
    }
    this.running = parseInterfaces(await readFile(join(this.root, CONFIG_PATHS.interfaces), "utf8").catch(() => ""));
  }

  async portStates(): Promise<Map<string, PortState>> {
    const out = new Map<string, PortState>();
    for (const name of this.portNames) {
      const r = this.running?.get(name);
      const adminUp = this.running === undefined ? undefined : !(r?.down ?? false);
      out.set(name, { adminUp, oper: adminUp === false ? "down" : this.neighbours.has(name) ? "up" : "down" });
    }
    return out;
  }

  async bgpPeers(): Promise<BgpPeerState[]> {
    const out: BgpPeerState[] = [];
    for (const [port, r] of this.running ?? []) {
      if (r.down || r.vrf === undefined) continue;
      const n = this.neighbours.get(port);
      out.push({ port, neighbor: n?.sysName ?? "", peerGroup: "MACHINE", vrf: r.vrf, state: n ? "Established" : "Active", sentPrefixes: 0, acceptedPrefixes: 0 });
    }
    return out;
  }

  async lldpSightings(): Promise<LldpSighting[]> {
    return [...this.neighbours].filter(([port]) => !(this.running?.get(port)?.down ?? false)).map(([port, n]) => ({ port, ...n }));
  }

  /** What the simulated switch runs now, per port (after the last successful reload). */
  runningPort(name: string): RunningPort | undefined {
    return this.running?.get(name);
  }

  /** Something on `port` sends LLDP frames (a machine's OS, or metal-hammer). */
  setNeighbour(port: string, sysName: string, sysDescription: string): void {
    this.neighbours.set(port, { sysName, sysDescription });
  }

  removeNeighbour(port: string): void {
    this.neighbours.delete(port);
  }

  /** The NOS's check refuses the next candidate file with this message. */
  rejectNextCheck(why: string): void {
    this.rejectCheck = why;
  }

  /** The next reload fails with this message. */
  failNextReload(why: string): void {
    this.failReload = why;
  }
}

/** Reads the per-port settings the simulated kernel cares about from an ifupdown2 file. */
export function parseInterfaces(text: string): Map<string, RunningPort> {
  const out = new Map<string, RunningPort>();
  let current: RunningPort | undefined;
  for (const line of text.split("\n")) {
    const head = /^iface (swp\d+)\b/.exec(line);
    if (head) {
      current = { down: false };
      out.set(head[1]!, current);
      continue;
    }
    if (/^(iface|auto) /.test(line)) {
      current = undefined;
      continue;
    }
    const l = line.trim();
    if (!current) continue;
    if (l === "link-down yes") current.down = true;
    else if (l.startsWith("vrf ")) current.vrf = l.slice(4);
    else if (l.startsWith("bridge-access ")) current.access = Number(l.slice(14));
  }
  return out;
}
