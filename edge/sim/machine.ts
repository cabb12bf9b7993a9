import { mkdtempSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import type { Hardware, InstallConfig, InstalledBoot, Inventory, Neighbor, PlannedDisk, PlannedFilesystem, PlannedPartition, PlannedRaid, PlannedVolume } from "../hammer/hardware.js";

export type BootTarget = "pxe" | "disk";

export interface SimFilesystem {
  format: PlannedFilesystem["format"];
  label: string;
  files: Map<string, string>;
}

export interface SimDisk {
  name: string;
  sizeBytes: bigint;
  partitions: PlannedPartition[];
  /** How often the disk was wiped; tests read it. */
  wipes: number;
}

export interface SimNic {
  name: string;
  mac: string;
  neighbors: Neighbor[];
}

/** What the tiny installed OS tells the world when it comes up (the lab turns it into LLDP). */
export interface SimOs {
  uuid: string;
  hostname: string;
  image: string;
  nics: SimNic[];
  boot: InstalledBoot;
}

/**
 * The image format the simulated machine can unpack: a JSON document
 * standing in for a root filesystem tarball, with the boot files its
 * install step reports.
 */
export interface SimImage {
  os: string;
  version: string;
  kernel: string;
  initrd: string;
  cmdline: string;
}

export interface SimMachineSpec {
  uuid: string;
  memoryBytes?: bigint;
  cpus?: Inventory["cpus"];
  disks?: { name: string; sizeBytes: bigint }[];
  nics: SimNic[];
  bios?: Inventory["bios"];
  /** Where images are downloaded to; a fresh temporary directory by default. */
  scratchDir?: string;
}

export interface SimMachineHooks {
  /** The machine booted from the network: whoever owns it starts metal-hammer on it, until `signal` (reset, power off). */
  pxeBoot?: (m: SimMachine, signal: AbortSignal) => void;
  /** The installed OS is up. */
  osBooted?: (m: SimMachine, os: SimOs) => void;
}

const GiB = 2n ** 30n;
const BOOT_INFO = "/etc/metal/boot-info.json";
const CONSOLE_SCROLLBACK = 64 * 1024;

/**
 * A simulated server behind metal-hammer's Hardware interface: inventory,
 * in-memory disks with partitions and filesystems, power and boot order
 * (what a BMC drives: powerOn, reset, powerOff), a serial console that
 * prints a boot log and answers input, and a tiny "OS" that runs when the
 * machine boots from a disk that has one installed (or is kexec'd into).
 */
export class SimMachine implements Hardware {
  readonly uuid: string;
  readonly disks: SimDisk[];
  readonly nics: SimNic[];
  readonly filesystems = new Map<string, SimFilesystem>();
  readonly raids = new Map<string, PlannedRaid>();
  readonly volumeGroups = new Map<string, string[]>();
  readonly volumes = new Map<string, PlannedVolume>();
  power: "on" | "off" = "off";
  bootOrder: BootTarget = "pxe";
  /** What runs right now. */
  running: "off" | "hammer" | "os" | "nothing" = "off";
  /** Everything done to the hardware, in order. */
  readonly ops: string[] = [];
  /** What the serial console printed since the machine last booted (the last 64 KiB): the scrollback a new attachment gets. */
  consoleLog = "";
  readonly console: Duplex;
  boots = 0;
  private current = new AbortController();
  private osRunning: SimOs | undefined;
  private scratch: string | undefined;
  private ownsScratch = false;

  constructor(
    private readonly spec: SimMachineSpec,
    public hooks: SimMachineHooks = {},
  ) {
    this.uuid = spec.uuid.toLowerCase();
    this.disks = (spec.disks ?? [{ name: "/dev/sda", sizeBytes: 240_000_000_000n }]).map((d) => ({ ...d, partitions: [], wipes: 0 }));
    this.nics = spec.nics;
    this.scratch = spec.scratchDir;
    const self = this;
    let pending = "";
    let afterCr = false;
    this.console = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        pending += chunk.toString();
        // A terminal's Enter is "\r" (an ssh session sends it raw), a pipe's "\n"; "\r\n" is one line end, even split over two writes.
        if (afterCr && pending.startsWith("\n")) pending = pending.slice(1);
        afterCr = false;
        let at: number;
        while ((at = pending.search(/[\r\n]/)) !== -1) {
          self.answer(pending.slice(0, at));
          const crlf = pending.startsWith("\r\n", at);
          afterCr = pending[at] === "\r" && !crlf && at === pending.length - 1;
          pending = pending.slice(at + (crlf ? 2 : 1));
        }
        done();
      },
    });
  }

  // ---- what the BMC drives ----

  powerOn(bootFrom?: BootTarget): void {
    if (bootFrom) this.bootOrder = bootFrom;
    if (this.power === "on") return;
    this.power = "on";
    this.startBoot();
  }

  /** A hard reset: whatever ran is gone, the machine boots again by its boot order. */
  reset(): void {
    this.stopRunning();
    this.power = "on";
    this.startBoot();
  }

  powerOff(): void {
    this.stopRunning();
    this.power = "off";
    this.running = "off";
    this.print("[    0.000000] power off\r\n");
  }

  setBootOrder(b: BootTarget): void {
    this.bootOrder = b;
  }

  /** The OS that runs now, if any. */
  get os(): SimOs | undefined {
    return this.running === "os" ? this.osRunning : undefined;
  }

  private stopRunning() {
    this.current.abort();
    this.current = new AbortController();
    this.osRunning = undefined;
  }

  private startBoot() {
    this.boots++;
    const signal = this.current.signal;
    // A boot starts a new console log: what an earlier boot printed (a previous tenant's session, before the
    // reclaim's reset) never reaches whoever attaches later. Attachments open now keep seeing the live output.
    this.consoleLog = "";
    this.print(`\r\nSimBIOS 1.0 (${this.uuid})\r\nBooting from ${this.bootOrder}...\r\n`);
    if (this.bootOrder === "pxe") {
      this.running = "hammer";
      this.print("PXE: DHCP... ok\r\nLoading metal-hammer...\r\n");
      this.hooks.pxeBoot?.(this, signal);
      return;
    }
    const boot = this.installedBoot();
    if (!boot) {
      this.running = "nothing";
      this.print("No bootable device.\r\n");
      return;
    }
    this.startOs(boot);
  }

  private installedBoot(): (InstalledBoot & { image: string; hostname: string }) | undefined {
    for (const fs of this.filesystems.values()) {
      const info = fs.files.get(BOOT_INFO);
      if (info) return JSON.parse(info);
    }
    return undefined;
  }

  private startOs(boot: InstalledBoot) {
    const installed = this.installedBoot();
    const os: SimOs = { uuid: this.uuid, hostname: installed?.hostname ?? this.uuid, image: installed?.image ?? "unknown", nics: this.nics, boot };
    this.running = "os";
    this.osRunning = os;
    this.print(`Linux version ${boot.kernel} (${os.image})\r\n[    0.000000] Command line: ${boot.cmdline}\r\n${os.hostname} login: `);
    this.hooks.osBooted?.(this, os);
  }

  private print(s: string) {
    this.consoleLog = (this.consoleLog + s).slice(-CONSOLE_SCROLLBACK);
    // Nobody attached yet: nothing piles up in the stream; whoever attaches reads consoleLog as scrollback.
    if (this.console.readableFlowing !== null) this.console.push(s);
  }

  private answer(line: string) {
    if (this.running === "os") {
      // The tty echoes what is typed.
      this.print(`${line}\r\n`);
      const cmd = line.trim();
      if (cmd === "hostname") this.print(`${this.osRunning!.hostname}\r\n`);
      else if (cmd === "uname") this.print("Linux\r\n");
      else if (cmd !== "") this.print(`${cmd}: command not found\r\n`);
      this.print(`${this.osRunning!.hostname} login: `);
    } else if (this.running === "hammer") {
      this.print("metal-hammer is running; there is no login in the discovery image\r\n");
    }
  }

  // ---- Hardware, as metal-hammer sees it ----

  async inventory(): Promise<Inventory> {
    return {
      uuid: this.uuid,
      memoryBytes: this.spec.memoryBytes ?? 16n * GiB,
      cpus: this.spec.cpus ?? [{ vendor: "Intel", model: "Xeon", cores: 4, threads: 8 }],
      disks: this.disks.map((d) => ({ name: d.name, sizeBytes: d.sizeBytes })),
      nics: this.nics.map((n) => ({ name: n.name, mac: n.mac, neighbors: n.neighbors.map((x) => ({ ...x })) })),
      gpus: [],
      bios: this.spec.bios ?? { vendor: "SimBIOS", version: "1.0", date: "2025-01-01" },
    };
  }

  private disk(device: string): SimDisk {
    const d = this.disks.find((x) => x.name === device);
    if (!d) throw new Error(`no such disk ${device}`);
    return d;
  }

  /** Drops every block device built on `gone` (and their filesystems), transitively. */
  private dropDevices(gone: Set<string>) {
    for (const [dev, r] of this.raids) if (r.devices.some((m) => gone.has(m))) this.raids.delete(dev), gone.add(dev);
    for (const [vg, members] of this.volumeGroups) {
      if (!members.some((m) => gone.has(m))) continue;
      this.volumeGroups.delete(vg);
      for (const [dev, lv] of this.volumes) if (lv.volumeGroup === vg) this.volumes.delete(dev), gone.add(dev);
    }
    for (const dev of gone) this.filesystems.delete(dev);
  }

  async wipeDisk(device: string): Promise<void> {
    const d = this.disk(device);
    this.dropDevices(new Set([device, ...d.partitions.map((p) => p.device)]));
    d.partitions = [];
    d.wipes++;
    this.ops.push(`wipe ${device}`);
  }

  async partitionDisk(plan: PlannedDisk): Promise<void> {
    const d = this.disk(plan.device);
    this.dropDevices(new Set(d.partitions.map((p) => p.device)));
    d.partitions = plan.partitions.map((p) => ({ ...p }));
    this.ops.push(`partition ${plan.device} ${plan.partitions.map((p) => `${p.number}:${p.startMib}-${p.endMib}`).join(",")}`);
  }

  private exists(device: string): boolean {
    return this.disks.some((d) => d.partitions.some((p) => p.device === device)) || this.raids.has(device) || this.volumes.has(device);
  }

  async createRaid(raid: PlannedRaid): Promise<void> {
    for (const m of raid.devices) if (!this.exists(m)) throw new Error(`mdadm: ${m} does not exist`);
    this.raids.set(raid.device, raid);
    this.ops.push(`raid ${raid.device}`);
  }

  async createVolumeGroup(name: string, devices: string[]): Promise<void> {
    for (const m of devices) if (!this.exists(m)) throw new Error(`vgcreate: ${m} does not exist`);
    this.volumeGroups.set(name, devices);
    this.ops.push(`vg ${name}`);
  }

  async createLogicalVolume(v: PlannedVolume): Promise<void> {
    if (!this.volumeGroups.has(v.volumeGroup)) throw new Error(`lvcreate: no volume group ${v.volumeGroup}`);
    this.volumes.set(v.device, v);
    this.ops.push(`lv ${v.device}`);
  }

  async format(fs: PlannedFilesystem): Promise<void> {
    if (!this.exists(fs.device)) throw new Error(`mkfs.${fs.format}: ${fs.device} does not exist`);
    this.filesystems.set(fs.device, { format: fs.format, label: fs.label, files: new Map() });
    this.ops.push(`mkfs ${fs.format} ${fs.device}`);
  }

  private root(filesystems: PlannedFilesystem[]): SimFilesystem {
    const root = filesystems.find((f) => f.path === "/");
    const fs = root && this.filesystems.get(root.device);
    if (!fs) throw new Error("no root filesystem to install onto");
    return fs;
  }

  private rootFs: SimFilesystem | undefined;

  async unpackImage(file: string, filesystems: PlannedFilesystem[]): Promise<void> {
    const fs = this.root(filesystems);
    let image: SimImage;
    try {
      image = JSON.parse(await readFile(file, "utf8"));
      if (typeof image.kernel !== "string" || typeof image.os !== "string") throw new Error("incomplete");
    } catch {
      throw new Error("tar: this does not look like an image this machine can unpack");
    }
    fs.files.set("/etc/os-release", `ID=${image.os}\nVERSION_ID=${image.version}\n`);
    fs.files.set("/image.json", JSON.stringify(image));
    this.rootFs = fs;
    this.ops.push(`unpack ${image.os}-${image.version}`);
  }

  async runInstallStep(config: InstallConfig): Promise<InstalledBoot> {
    const fs = this.rootFs;
    const raw = fs?.files.get("/image.json");
    if (!fs || !raw) throw new Error("install: no unpacked image");
    const image: SimImage = JSON.parse(raw);
    fs.files.set("/etc/metal/install.json", JSON.stringify(config));
    const boot: InstalledBoot = { kernel: image.kernel, initrd: image.initrd, cmdline: `${image.cmdline} root=${config.rootDevice}`.trim(), bootloaderId: image.os };
    fs.files.set(BOOT_INFO, JSON.stringify({ ...boot, image: `${image.os}-${image.version}`, hostname: config.hostname }));
    this.ops.push("install");
    return boot;
  }

  async kexec(boot: InstalledBoot): Promise<void> {
    this.ops.push(`kexec ${boot.kernel}`);
    // The discovery image is gone once the new kernel runs.
    this.stopRunning();
    this.print(`kexec: starting ${boot.kernel}\r\n`);
    this.startOs(boot);
  }

  async reboot(): Promise<void> {
    this.ops.push("reboot");
    queueMicrotask(() => this.reset());
  }

  scratchDir(): string {
    if (!this.scratch) {
      this.scratch = mkdtempSync(join(tmpdir(), "sim-machine-"));
      this.ownsScratch = true;
    }
    return this.scratch;
  }

  /** Powers off and removes the scratch directory the machine made for itself. */
  async dispose(): Promise<void> {
    this.powerOff();
    if (this.ownsScratch && this.scratch) await rm(this.scratch, { recursive: true, force: true });
  }
}
