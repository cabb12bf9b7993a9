import { rename, writeFile } from "node:fs/promises";
import type { Duplex } from "node:stream";
import type { BmcAdapter, BmcCommandName, BmcInfo, BmcTarget } from "../bmc/adapter.js";
import type { ConsoleAdapter, SerialConsole } from "../bmc/console.js";
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
  /** The machine's serial console as its BMC offers it (IPMI SOL on real hardware). */
  serial: SimSerialConsole;
}

/** A machine's serial line from elsewhere (a simulated machine's console stream and what it printed so far). */
export interface SimSerialLine {
  stream: Duplex;
  log?: () => string;
}

const SCROLLBACK = 64 * 1024;
const enc = new TextEncoder();
const dec = new TextDecoder();
/** The production time of replayed output the BMC did not see being printed: unknown, so the oldest there is. */
const UNKNOWN_TIME = new Date(0);

/** Console output with the time it was printed. */
interface Printed {
  text: string;
  at: Date;
}

/** The newest output with the time each piece was printed; holds at least the last `cap` characters. */
class PrintedLog {
  private pieces: Printed[] = [];
  private chars = 0;

  constructor(private readonly cap: number) {}

  get entries(): readonly Printed[] {
    return this.pieces;
  }

  add(text: string, at: Date): void {
    if (text === "") return;
    this.pieces.push({ text, at });
    this.chars += text.length;
    while (this.pieces.length > 1 && this.chars - this.pieces[0]!.text.length >= this.cap) this.chars -= this.pieces.shift()!.text.length;
  }

  clear(): void {
    this.pieces = [];
    this.chars = 0;
  }

  /** The last `cap` characters, each piece with its time. */
  tail(): Printed[] {
    const over = this.chars - this.cap;
    if (over <= 0) return [...this.pieces];
    const [first, ...rest] = this.pieces;
    return [{ text: first!.text.slice(over), at: first!.at }, ...rest];
  }

  /**
   * `log` (a suffix of what was added, as a machine's own console log is)
   * split into the pieces it was printed in, each with its time; a beginning
   * this log never saw gets UNKNOWN_TIME.
   */
  timesOf(log: string): Printed[] {
    const out: Printed[] = [];
    let rest = log;
    for (let i = this.pieces.length - 1; i >= 0 && rest !== ""; i--) {
      const p = this.pieces[i]!;
      if (rest.endsWith(p.text)) {
        out.unshift(p);
        rest = rest.slice(0, rest.length - p.text.length);
        continue;
      }
      // The log may begin inside a piece (it is capped too).
      if (p.text.endsWith(rest)) {
        out.unshift({ text: rest, at: p.at });
        rest = "";
      }
      break;
    }
    if (rest !== "") out.unshift({ text: rest, at: UNKNOWN_TIME });
    return out;
  }
}

/**
 * A machine's serial console behind its simulated BMC. On its own it plays a
 * booted machine: a boot log on every power-on or reset, a shell prompt that
 * echoes what is typed and answers a few commands. Given a line (the lab's
 * simulated machine), it carries that machine's console instead. A new
 * attachment first gets the scrollback, as a console server's log would show:
 * what was printed since the machine last booted (never what an earlier boot
 * printed, which may be a previous tenant's session), each piece marked with
 * the time it was printed so that the control plane can withhold what
 * predates the current allocation.
 */
export class SimSerialConsole {
  /** What this console printed itself since the last boot (without a line). */
  private readonly out = new PrintedLog(SCROLLBACK);
  /** What came over the line, with the time it came: the production times of the machine's own log. */
  private readonly heard = new PrintedLog(SCROLLBACK);
  private readonly attached = new Set<{ data: Set<(d: Uint8Array, producedAt: Date) => void>; closed: Set<(r?: string) => void>; end(reason?: string): void }>();
  private lineBuffer = "";
  /** Attachments made and ended so far. */
  opened = 0;
  closed = 0;
  /** Everything typed, over all attachments. */
  typed = "";
  /** Window sizes asked for, in order. */
  readonly windowSizes: { columns: number; rows: number }[] = [];

  constructor(
    private readonly hostname: string,
    private readonly line?: SimSerialLine,
  ) {
    line?.stream.on("data", (chunk: Buffer | string) => {
      const text = typeof chunk === "string" ? chunk : chunk.toString("utf8");
      const at = new Date();
      this.heard.add(text, at);
      this.emit(text, at);
    });
  }

  /** Attachments open now. */
  get attachments(): number {
    return this.attached.size;
  }

  /** What a new attachment sees first, in the pieces it was printed in, each with the time it was printed. */
  replay(): Printed[] {
    if (!this.line) return this.out.tail();
    const log = this.line.log?.();
    return log === undefined ? [] : this.heard.timesOf(log);
  }

  /** What a new attachment sees first. */
  get scrollback(): string {
    return this.replay()
      .map((p) => p.text)
      .join("");
  }

  /** Output of the machine (ignored with a line: the machine prints itself). */
  print(text: string): void {
    if (this.line) return;
    const at = new Date();
    this.out.add(text, at);
    this.emit(text, at);
  }

  private emit(text: string, at: Date): void {
    const bytes = enc.encode(text);
    for (const a of this.attached) for (const l of a.data) l(bytes, at);
  }

  /**
   * The machine boots (power-on, reset): a new console log begins, so what
   * the previous boot printed (a previous tenant's session) is replayed to
   * no later attachment. Attachments open now see the new boot live.
   */
  boot(): void {
    this.out.clear();
    this.heard.clear();
    this.print(
      `\r\nSimBIOS 1.0\r\n[    0.000000] Linux version 6.1.0-sim\r\n[    0.120000] console [ttyS1] enabled\r\n` +
        `[    1.800000] systemd[1]: Reached target Multi-User System.\r\n\r\nWelcome to metal sim\r\n${this.prompt()}`,
    );
  }

  private prompt(): string {
    return `root@${this.hostname}:~# `;
  }

  private input(text: string): void {
    this.typed += text;
    if (this.line) return void this.line.stream.write(text);
    for (const ch of text) {
      if (ch === "\r" || ch === "\n") {
        const cmd = this.lineBuffer.trim();
        this.lineBuffer = "";
        this.print(`\r\n${this.answer(cmd)}${this.prompt()}`);
      } else if (ch === "\x7f" || ch === "\b") {
        if (this.lineBuffer.length > 0) {
          this.lineBuffer = this.lineBuffer.slice(0, -1);
          this.print("\b \b");
        }
      } else {
        this.lineBuffer += ch;
        // A terminal in cooked mode echoes what is typed.
        this.print(ch);
      }
    }
  }

  private answer(cmd: string): string {
    if (cmd === "") return "";
    if (cmd === "hostname") return `${this.hostname}\r\n`;
    if (cmd === "uname") return "Linux\r\n";
    if (cmd.startsWith("echo ")) return `${cmd.slice(5)}\r\n`;
    return `-sh: ${cmd.split(/\s+/)[0]}: not found\r\n`;
  }

  /** Attaches like an SOL session does. */
  attach(): SerialConsole {
    const data = new Set<(d: Uint8Array, producedAt: Date) => void>();
    const closed = new Set<(r?: string) => void>();
    let ended = false;
    let replayed = false;
    const entry = {
      data,
      closed,
      end: (reason?: string) => {
        if (ended) return;
        ended = true;
        this.attached.delete(entry);
        this.closed++;
        for (const l of closed) l(reason);
      },
    };
    this.attached.add(entry);
    this.opened++;
    return {
      write: (bytes) => {
        if (!ended) this.input(dec.decode(bytes));
      },
      resize: (columns, rows) => void this.windowSizes.push({ columns, rows }),
      onData: (l) => {
        data.add(l);
        if (!replayed) {
          replayed = true;
          for (const p of this.replay()) l(enc.encode(p.text), p.at);
        }
      },
      onClose: (l) => void closed.add(l),
      close: () => entry.end(),
    };
  }

  /** Ends every attachment from the machine's side (the BMC dropped its SOL sessions). */
  hangup(reason = "SOL session closed by the BMC"): void {
    for (const a of [...this.attached]) a.end(reason);
  }
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
export class SimBmcs implements BmcAdapter, ConsoleAdapter {
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

  /** `line`: the machine's own console (the lab's simulated machine); without one the BMC plays a booted machine. */
  add(m: Pick<SimMachineBmc, "uuid" | "ip" | "mac"> & Partial<SimMachineBmc>, line?: SimSerialLine): SimMachineBmc {
    const serial = m.serial ?? new SimSerialConsole(`sim-${m.uuid.slice(0, 8)}`, line);
    if (!m.serial && !line) serial.boot();
    const full: SimMachineBmc = {
      serial,
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

  async identify(target: BmcTarget): Promise<string> {
    return this.reach(target).uuid.toLowerCase();
  }

  async openConsole(target: BmcTarget, machineId: string): Promise<SerialConsole> {
    const m = this.reach(target);
    if (m.uuid.toLowerCase() !== machineId.toLowerCase()) throw new Error(`BMC ${target.host} belongs to machine ${m.uuid}, not ${machineId}`);
    return m.serial.attach();
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
        m.serial.print("\r\n[  100.000000] reboot: Power down\r\n");
        result = "Chassis Power Control: Down/Off";
        break;
      case "RESET":
      case "CYCLE":
        m.power = "ON";
        m.resets++;
        m.serial.boot();
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
