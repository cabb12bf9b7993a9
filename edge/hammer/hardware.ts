/**
 * Everything metal-hammer does to the machine it runs on goes through this
 * one interface, so the same agent code drives real hardware and the
 * simulated machines of edge/sim/machine.ts.
 */

export interface Neighbor {
  /** The switch's system name. */
  hostname: string;
  /** The switch port the NIC is cabled to. */
  port: string;
}

export interface Inventory {
  /** The SMBIOS UUID: the machine id. */
  uuid: string;
  memoryBytes: bigint;
  cpus: { vendor: string; model: string; cores: number; threads: number }[];
  disks: { name: string; sizeBytes: bigint }[];
  nics: { name: string; mac: string; neighbors: Neighbor[] }[];
  gpus: { vendor: string; model: string }[];
  bios: { vendor: string; version: string; date: string };
}

export type GptTypeName = "boot" | "linux" | "raid" | "lvm";
export type FormatName = "vfat" | "ext3" | "ext4" | "swap" | "tmpfs" | "none";

export interface PlannedPartition {
  number: number;
  /** The partition's device, e.g. /dev/sda1 or /dev/nvme0n1p1. */
  device: string;
  label: string;
  gptType: GptTypeName;
  /** Offsets in MiB; the first partition starts at 1 MiB for alignment. */
  startMib: number;
  endMib: number;
}

export interface PlannedDisk {
  device: string;
  partitions: PlannedPartition[];
}

export interface PlannedFilesystem {
  device: string;
  /** Mount point; empty for swap or an unmounted filesystem. */
  path: string;
  format: FormatName;
  label: string;
  mountOptions: string[];
  createOptions: string[];
}

export interface PlannedRaid {
  device: string;
  level: 0 | 1;
  devices: string[];
  spares: number;
  createOptions: string[];
}

export interface PlannedVolume {
  volumeGroup: string;
  name: string;
  device: string;
  /** 0 takes the rest of the group. */
  sizeMib: number;
  type: "linear" | "striped" | "raid1";
}

/** What the installed OS reports about how it boots (its install step writes it). */
export interface InstalledBoot {
  kernel: string;
  initrd: string;
  cmdline: string;
  bootloaderId: string;
}

/** Handed to the image's install step, like the original's /etc/metal/install.yaml. */
export interface InstallConfig {
  machineUuid: string;
  hostname: string;
  sshPublicKeys: string[];
  userData: string;
  consolePassword: string;
  networks: { network: string; ips: string[]; vrf: number; primary: boolean }[];
  dnsServers: string[];
  ntpServers: string[];
  role: "machine" | "firewall";
  rootDevice: string;
}

export interface Hardware {
  inventory(): Promise<Inventory>;
  /** Destroys everything on the disk (data, partition table, filesystem signatures). */
  wipeDisk(device: string): Promise<void>;
  /** Writes a fresh partition table with exactly these partitions. */
  partitionDisk(disk: PlannedDisk): Promise<void>;
  createRaid(raid: PlannedRaid): Promise<void>;
  createVolumeGroup(name: string, devices: string[]): Promise<void>;
  createLogicalVolume(volume: PlannedVolume): Promise<void>;
  format(fs: PlannedFilesystem): Promise<void>;
  /** Unpacks the (verified) image file onto the root filesystem and whatever is mounted below it. */
  unpackImage(file: string, filesystems: PlannedFilesystem[]): Promise<void>;
  /** Runs the image's own install step inside the unpacked root; it tells how the OS boots. */
  runInstallStep(config: InstallConfig): Promise<InstalledBoot>;
  /** Starts the given kernel in place of the running one; resolves once the hand-over is under way. */
  kexec(boot: InstalledBoot): Promise<void>;
  reboot(): Promise<void>;
  /** A directory the image is downloaded to (tmpfs on the real discovery image). */
  scratchDir(): string;
}
