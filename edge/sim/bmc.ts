import { writeFile, rename } from "node:fs/promises";
import type { BmcAdapter, BmcCommandName, BmcInfo, BmcTarget } from "../bmc/adapter.js";
import { formatLeases, type Lease } from "../bmc/leases.js";

/** One simulated machine as its BMC sees it. */
export interface SimMachineBmc {
  uuid: string;
  ip: string;
  mac: string;
  power: "ON" | "OFF";
  /** The boot device set last; "none" until one is set. */
  bootDevice: "none" | "pxe" | "disk" | "bios";
  led: "on" | "off";
  firmware: string;
  fru: Record<string, string>;
  /** Every command carried out, in order. */
  executed: BmcCommandName[];
  /** Resets and power cycles, which is what makes a real machine boot again. */
  resets: number;
  /** Commands received, counted before a held BMC lets them through. */
  received: number;
}

export interface SimBmcOptions {
  user?: string;
  password?: string;
}

type Listener = (m: SimMachineBmc, command: BmcCommandName) => void;

/**
 * The BMCs of a simulated partition behind the same adapter interface as the
 * IPMI one: power state, boot device and identify LED per machine, a lease
 * file for metal-bmc to discover them, and the log of every command carried
 * out (what tests count). Listeners learn of each command, so the lab can
 * boot a machine when its BMC resets it.
 */
export class SimBmcs implements BmcAdapter {
  readonly machines = new Map<string, SimMachineBmc>();
  private readonly listeners = new Set<Listener>();
  private readonly gates = new Map<string, Promise<void>>();
  private readonly user: string;
  private readonly password: string;
  /** BMCs that do not answer, by IP. */
  readonly unreachable = new Set<string>();

  constructor(opts: SimBmcOptions = {}) {
    this.user = opts.user ?? "ADMIN";
    this.password = opts.password ?? "ADMIN";
  }

  add(m: Pick<SimMachineBmc, "uuid" | "ip" | "mac"> & Partial<SimMachineBmc>): SimMachineBmc {
    const full: SimMachineBmc = {
      power: "ON",
      bootDevice: "none",
      led: "off",
      firmware: "1.0.0-sim",
      fru: { board_mfg: "metal sim", product_serial: `SIM-${m.uuid.slice(0, 8)}` },
      executed: [],
      resets: 0,
      received: 0,
      ...m,
    };
    this.machines.set(full.ip, full);
    return full;
  }

  byUuid(uuid: string): SimMachineBmc | undefined {
    return [...this.machines.values()].find((m) => m.uuid === uuid);
  }

  onCommand(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Holds every command for the machine until the promise settles (a slow BMC). */
  hold(uuid: string, until: Promise<void>): void {
    this.gates.set(uuid, until);
  }

  /** Writes the lease file metal-bmc reads, atomically as dhcpd does. */
  async writeLeases(file: string, now = new Date()): Promise<void> {
    const leases: Lease[] = [...this.machines.values()].map((m) => ({
      ip: m.ip,
      mac: m.mac,
      starts: new Date(now.getTime() - 60_000),
      ends: new Date(now.getTime() + 24 * 3_600_000),
      state: "active",
      hostname: `bmc-${m.uuid.slice(0, 8)}`,
    }));
    await writeFile(`${file}.tmp`, formatLeases(leases) + "\n");
    await rename(`${file}.tmp`, file);
  }

  private reach(target: BmcTarget): SimMachineBmc {
    const m = this.machines.get(target.host);
    if (!m || this.unreachable.has(target.host)) throw new Error(`BMC ${target.host}:${target.port} does not answer`);
    if (target.user !== this.user || target.password !== this.password) throw new Error(`BMC ${target.host}: authentication failed`);
    return m;
  }

  async query(target: BmcTarget): Promise<BmcInfo> {
    const m = this.reach(target);
    return { uuid: m.uuid, firmware: m.firmware, powerState: m.power, fru: { ...m.fru } };
  }

  async execute(target: BmcTarget, command: BmcCommandName): Promise<string> {
    const m = this.reach(target);
    m.received++;
    await this.gates.get(m.uuid);
    m.executed.push(command);
    let result: string;
    switch (command) {
      case "POWER_ON":
        m.power = "ON";
        result = "Chassis Power Control: Up/On";
        break;
      case "POWER_OFF":
        m.power = "OFF";
        result = "Chassis Power Control: Down/Off";
        break;
      case "RESET":
      case "CYCLE":
        m.power = "ON";
        m.resets++;
        result = command === "RESET" ? "Chassis Power Control: Reset" : "Chassis Power Control: Cycle";
        break;
      case "BOOT_FROM_PXE":
      case "BOOT_FROM_DISK":
      case "BOOT_FROM_BIOS": {
        m.bootDevice = command === "BOOT_FROM_PXE" ? "pxe" : command === "BOOT_FROM_DISK" ? "disk" : "bios";
        result = `Set Boot Device to ${m.bootDevice}`;
        break;
      }
      case "LED_ON":
      case "LED_OFF":
        m.led = command === "LED_ON" ? "on" : "off";
        result = `Chassis identify interval: ${command === "LED_ON" ? "indefinite" : "off"}`;
        break;
    }
    for (const l of this.listeners) l(m, command);
    return result;
  }
}
