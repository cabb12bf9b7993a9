import { mkdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Hardware, InstallConfig, InstalledBoot, Inventory, PlannedDisk, PlannedFilesystem, PlannedRaid, PlannedVolume } from "../hardware.js";
import * as disks from "./disks.js";
import { unpackTarball } from "./image.js";
import { runInstallStep } from "./install.js";
import { hostFiles, type LldpWait, readInventory, type SystemFiles } from "./inventory.js";
import { kexecInto, rootLookup } from "./kexec.js";
import { fstab, mountAll, unmountAll } from "./mounts.js";
import { type CommandRunner, spawnRunner } from "./runner.js";

export interface LinuxHardwareOptions {
  runner?: CommandRunner;
  files?: SystemFiles;
  /** Where the installation is mounted while it is unpacked and installed. */
  targetDir?: string;
  /** Where the image is downloaded to. */
  scratchDir?: string;
  /** Mount a tmpfs of this size on the scratch directory (an image of several GiB does not fit in /run's default 10 % of RAM); undefined: use the directory as it is. */
  scratchTmpfsSize?: string;
  lldp?: LldpWait;
  /** How long a device node may take to appear after the command that creates it. */
  deviceWaitMs?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export const DEFAULT_TARGET_DIR = "/run/metal/root";
export const DEFAULT_SCRATCH_DIR = "/run/metal/scratch";

/**
 * metal-hammer's Hardware on a real Linux machine (the discovery image):
 * inventory from /proc, /sys, lsblk, ip and lldpcli; disks with wipefs,
 * sgdisk, mdadm, LVM and mkfs; the image unpacked with tar onto the new
 * filesystems mounted under targetDir; the image's install step in a
 * chroot; kexec into the installed kernel. Every command goes through one
 * CommandRunner (argv only, timeouts, bounded output).
 */
export class LinuxHardware implements Hardware {
  private readonly runner: CommandRunner;
  private readonly files: SystemFiles;
  private readonly target: string;
  private readonly scratch: string;
  private readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  private readonly diskDeps: disks.DiskDeps;
  /** Mount points of the installation, children first; empty when nothing is mounted. */
  private mounted: string[] = [];
  /** Physical volumes per volume group created in this run: a striped volume spreads over all of them. */
  private readonly groups = new Map<string, number>();

  constructor(private readonly opts: LinuxHardwareOptions = {}) {
    this.runner = opts.runner ?? spawnRunner();
    this.files = opts.files ?? hostFiles;
    this.target = opts.targetDir ?? DEFAULT_TARGET_DIR;
    this.scratch = opts.scratchDir ?? DEFAULT_SCRATCH_DIR;
    this.log = opts.log ?? (() => {});
    this.diskDeps = { runner: this.runner, waitForDevice: (d) => this.waitForDevice(d) };
  }

  async inventory(): Promise<Inventory> {
    await this.prepareScratch();
    return readInventory({ runner: this.runner, files: this.files, lldp: this.opts.lldp, log: this.log });
  }

  wipeDisk(device: string): Promise<void> {
    return disks.wipeDisk(this.diskDeps, device);
  }

  partitionDisk(disk: PlannedDisk): Promise<void> {
    return disks.partitionDisk(this.diskDeps, disk);
  }

  createRaid(raid: PlannedRaid): Promise<void> {
    return disks.createRaid(this.diskDeps, raid);
  }

  async createVolumeGroup(name: string, devices: string[]): Promise<void> {
    await disks.createVolumeGroup(this.diskDeps, name, devices);
    this.groups.set(name, devices.length);
  }

  createLogicalVolume(volume: PlannedVolume): Promise<void> {
    return disks.createLogicalVolume(this.diskDeps, volume, this.groups.get(volume.volumeGroup) ?? 1);
  }

  format(fs: PlannedFilesystem): Promise<void> {
    return disks.format(this.diskDeps, fs);
  }

  async unpackImage(file: string, filesystems: PlannedFilesystem[]): Promise<void> {
    await this.unmount();
    await mkdir(this.target, { recursive: true, mode: 0o700 });
    this.mounted = await mountAll(this.runner, this.target, filesystems);
    await unpackTarball(this.runner, file, this.target);
    await mkdir(join(this.target, "etc"), { recursive: true });
    await writeFile(join(this.target, "etc/fstab"), fstab(filesystems));
  }

  runInstallStep(config: InstallConfig): Promise<InstalledBoot> {
    if (this.mounted.length === 0) return Promise.reject(new Error("install step: no unpacked image is mounted"));
    return runInstallStep(this.runner, this.target, config);
  }

  /**
   * After an installation the new root is still mounted. After a failed
   * reinstall (the previous OS boots again) nothing is: its root is found
   * by the root= of its command line and mounted read-only for the load.
   */
  async kexec(boot: InstalledBoot): Promise<void> {
    if (this.mounted.length === 0) {
      const device = await this.rootDeviceOf(boot.cmdline);
      await mkdir(this.target, { recursive: true, mode: 0o700 });
      await this.runner.run(["mount", "-o", "ro", device, this.target], { timeoutMs: 120_000 });
      this.mounted = [this.target];
    }
    await kexecInto(this.runner, this.target, boot, () => this.unmount());
  }

  async reboot(): Promise<void> {
    await this.unmount().catch(() => {});
    await this.runner.run(["sync"], { allowFailure: true, timeoutMs: 60_000 }).catch(() => {});
    try {
      await this.runner.run(["reboot", "-f"], { timeoutMs: 60_000 });
    } catch (err) {
      // No reboot binary (or it failed): the kernel's magic SysRq reboots at once.
      this.log("reboot -f failed; rebooting through /proc/sysrq-trigger", { err: String(err) });
      await writeFile("/proc/sysrq-trigger", "b");
    }
  }

  scratchDir(): string {
    mkdirSync(this.scratch, { recursive: true, mode: 0o700 });
    return this.scratch;
  }

  /** Unmounts the installation (children first). */
  async unmount(): Promise<void> {
    const points = this.mounted;
    this.mounted = [];
    await unmountAll(this.runner, points);
  }

  private async rootDeviceOf(cmdline: string): Promise<string> {
    const lookup = rootLookup(cmdline);
    if (!lookup) throw new Error(`cannot boot the previous OS: its command line names no root= device ("${cmdline.slice(0, 200)}")`);
    if ("device" in lookup) return lookup.device;
    const out = (await this.runner.run(lookup.argv)).stdout.trim().split("\n")[0] ?? "";
    if (!out.startsWith("/dev/")) throw new Error(`cannot boot the previous OS: no device found for its root (${lookup.argv.join(" ")})`);
    return out;
  }

  private async prepareScratch(): Promise<void> {
    const size = this.opts.scratchTmpfsSize;
    if (size === undefined) return;
    const dir = this.scratchDir();
    const mounts = (await this.files.read("/proc/self/mountinfo")) ?? "";
    if (mounts.split("\n").some((l) => l.split(" ")[4] === dir)) return;
    try {
      await this.runner.run(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir]);
    } catch (err) {
      // Not fatal: the download may still fit where the directory is.
      this.log("mounting a tmpfs for the image download failed", { err: String(err) });
    }
  }

  private async waitForDevice(device: string): Promise<void> {
    const deadline = Date.now() + (this.opts.deviceWaitMs ?? 30_000);
    for (;;) {
      if (await this.files.exists(device)) return;
      if (Date.now() > deadline) throw new Error(`${device} did not appear`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
