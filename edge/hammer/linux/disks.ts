import type { GptTypeName, PlannedDisk, PlannedFilesystem, PlannedRaid, PlannedVolume } from "../hardware.js";
import type { CommandRunner } from "./runner.js";

/**
 * The disk steps of an installation as commands: wipe, partition (sgdisk),
 * RAID (mdadm), LVM, mkfs. Each waits for the device nodes it creates, so
 * the next step finds them.
 */

const MiB = 1024 * 1024;
/** How much of each end of a disk is zeroed when it cannot be discarded: partition tables, RAID and LVM headers, filesystem superblocks. */
const ZERO_MIB = 16;

export const GPT_TYPE_CODES: Record<GptTypeName, string> = { boot: "ef00", linux: "8300", raid: "fd00", lvm: "8e00" };

/** Timeouts: a discard or zeroing of a big disk takes long, everything else should not. */
export const DISK_TIMEOUTS = { discardMs: 30 * 60_000, mkfsMs: 30 * 60_000, stepMs: 5 * 60_000 };

export interface DiskDeps {
  runner: CommandRunner;
  /** Waits until a device node exists (udev may create it a moment after the command returned). */
  waitForDevice: (device: string) => Promise<void>;
}

/**
 * Destroys everything on a disk: the signatures on its partitions (an old
 * RAID or LVM header would otherwise come back when the same partitions are
 * created again), the disk's own, its content (discarded, or the first and
 * last 16 MiB zeroed where discard is not supported) and both GPT copies.
 * Arrays and volume groups of an earlier installation that live on the
 * disk are stopped first so nothing holds it open; nothing else is touched.
 */
export async function wipeDisk(deps: DiskDeps, device: string): Promise<void> {
  const { runner } = deps;
  const tree = await blockTree(runner, device);
  await releaseHolders(runner, tree);
  const partitions = (tree?.children ?? []).filter((c) => c.type === "part").map((c) => c.name);
  for (const part of partitions) await runner.run(["wipefs", "-a", part], { timeoutMs: DISK_TIMEOUTS.stepMs });
  await runner.run(["wipefs", "-a", device], { timeoutMs: DISK_TIMEOUTS.stepMs });
  const discarded = runner.has("blkdiscard") && (await runner.run(["blkdiscard", device], { allowFailure: true, timeoutMs: DISK_TIMEOUTS.discardMs })).code === 0;
  if (!discarded) await zeroEnds(runner, device);
  await runner.run(["sgdisk", "--zap-all", device], { timeoutMs: DISK_TIMEOUTS.stepMs });
  await settle(runner, device);
}

/** A block device and what is built on it, as `lsblk -J -p -o NAME,TYPE` prints it. */
export interface BlockNode {
  name: string;
  type: string;
  children?: BlockNode[];
}

async function blockTree(runner: CommandRunner, device: string): Promise<BlockNode | undefined> {
  const r = await runner.run(["lsblk", "-J", "-p", "-o", "NAME,TYPE", device], { allowFailure: true });
  if (r.code !== 0) return undefined;
  try {
    return (JSON.parse(r.stdout) as { blockdevices?: BlockNode[] }).blockdevices?.[0];
  } catch {
    return undefined;
  }
}

/**
 * What holds a disk open: md arrays built on it, in the order to stop them
 * (an array built on another array first), and the devices that carry
 * active logical volumes (physical volumes, whose groups are deactivated
 * before any array stops).
 */
export function holdersOf(tree: BlockNode | undefined): { arrays: string[]; physicalVolumes: string[] } {
  const arrays: string[] = [];
  const physicalVolumes: string[] = [];
  const walk = (node: BlockNode) => {
    const children = node.children ?? [];
    if (children.some((c) => c.type === "lvm") && !physicalVolumes.includes(node.name)) physicalVolumes.push(node.name);
    for (const c of children) walk(c);
    if (node.type.startsWith("raid") && !arrays.includes(node.name)) arrays.push(node.name);
  };
  if (tree) walk(tree);
  return { arrays, physicalVolumes };
}

async function releaseHolders(runner: CommandRunner, tree: BlockNode | undefined): Promise<void> {
  const { arrays, physicalVolumes } = holdersOf(tree);
  if (physicalVolumes.length > 0) {
    const pvs = await runner.run(["pvs", "--noheadings", "-o", "vg_name", ...physicalVolumes], { allowFailure: true });
    const groups = [
      ...new Set(
        pvs.stdout
          .split("\n")
          .map((l) => l.trim())
          .filter((l) => l !== ""),
      ),
    ];
    for (const vg of groups) await runner.run(["vgchange", "--activate", "n", vg], { timeoutMs: DISK_TIMEOUTS.stepMs });
  }
  for (const md of arrays) await runner.run(["mdadm", "--stop", md], { timeoutMs: DISK_TIMEOUTS.stepMs });
}

async function zeroEnds(runner: CommandRunner, device: string): Promise<void> {
  const size = Number((await runner.run(["blockdev", "--getsize64", device])).stdout.trim());
  if (!Number.isFinite(size) || size <= 0) throw new Error(`${device}: blockdev reports no size`);
  const totalMib = Math.floor(size / MiB);
  const count = Math.min(ZERO_MIB, totalMib);
  const dd = (seek: number) => ["dd", "if=/dev/zero", `of=${device}`, "bs=1M", `count=${count}`, `seek=${seek}`, "conv=fsync", "status=none"];
  await runner.run(dd(0), { timeoutMs: DISK_TIMEOUTS.stepMs });
  if (totalMib > count) await runner.run(dd(totalMib - count), { timeoutMs: DISK_TIMEOUTS.stepMs });
}

/**
 * A fresh GPT with exactly the planned partitions. sgdisk reads an absolute
 * end like "17M" as the sector at 17 MiB, inclusive, so each partition is
 * given as start plus size ("+16M"), which ends one sector before the next
 * partition's start.
 */
export async function partitionDisk(deps: DiskDeps, disk: PlannedDisk): Promise<void> {
  const argv = ["sgdisk", "--clear"];
  for (const p of disk.partitions) {
    argv.push(`--new=${p.number}:${p.startMib}M:+${p.endMib - p.startMib}M`, `--typecode=${p.number}:${GPT_TYPE_CODES[p.gptType]}`);
    if (p.label !== "") argv.push(`--change-name=${p.number}:${p.label}`);
  }
  argv.push(disk.device);
  await deps.runner.run(argv, { timeoutMs: DISK_TIMEOUTS.stepMs });
  await rereadPartitions(deps.runner, disk.device);
  for (const p of disk.partitions) await deps.waitForDevice(p.device);
}

/**
 * Tells the kernel about the new table, partition by partition (partprobe
 * or util-linux's partx): a whole-disk reread (BLKRRPART, what sgdisk and
 * `blockdev --rereadpt` ask for) can succeed and still change nothing.
 */
async function rereadPartitions(runner: CommandRunner, device: string): Promise<void> {
  if (runner.has("partprobe")) await runner.run(["partprobe", device], { timeoutMs: DISK_TIMEOUTS.stepMs });
  else await runner.run(["partx", "--update", device], { timeoutMs: DISK_TIMEOUTS.stepMs });
  await settle(runner, device);
}

async function settle(runner: CommandRunner, _device: string): Promise<void> {
  // No udev in the discovery image is fine: the kernel's devtmpfs has the nodes already.
  if (runner.has("udevadm")) await runner.run(["udevadm", "settle", "--timeout=60"], { allowFailure: true, timeoutMs: 90_000 });
}

/**
 * An md array. Level 1 arrays get metadata 1.0 (at the end of the members)
 * unless the layout says otherwise, so firmware reading a mirrored EFI
 * partition sees a plain FAT filesystem.
 */
export async function createRaid(deps: DiskDeps, raid: PlannedRaid): Promise<void> {
  const active = raid.devices.length - raid.spares;
  if (active < 1) throw new Error(`raid ${raid.device}: ${raid.devices.length} devices leave no active member with ${raid.spares} spares`);
  const hasMetadata = raid.createOptions.some((o) => o === "-e" || o.startsWith("--metadata"));
  const argv = ["mdadm", "--create", raid.device, "--run", `--level=${raid.level}`, `--raid-devices=${active}`];
  if (raid.spares > 0) argv.push(`--spare-devices=${raid.spares}`);
  if (raid.level === 1 && !hasMetadata) argv.push("--metadata=1.0");
  argv.push(...raid.createOptions, ...raid.devices);
  await deps.runner.run(argv, { timeoutMs: DISK_TIMEOUTS.stepMs });
  await settle(deps.runner, raid.device);
  await deps.waitForDevice(raid.device);
}

export async function createVolumeGroup(deps: DiskDeps, name: string, devices: string[]): Promise<void> {
  await deps.runner.run(["pvcreate", "--yes", ...devices], { timeoutMs: DISK_TIMEOUTS.stepMs });
  await deps.runner.run(["vgcreate", "--yes", name, ...devices], { timeoutMs: DISK_TIMEOUTS.stepMs });
}

/** `members` is the number of physical volumes of the group: a striped volume spreads over all of them, raid1 mirrors once. */
export async function createLogicalVolume(deps: DiskDeps, v: PlannedVolume, members: number): Promise<void> {
  const argv = ["lvcreate", "--yes", "--wipesignatures", "y", "--name", v.name];
  argv.push(...(v.sizeMib > 0 ? ["--size", `${v.sizeMib}m`] : ["--extents", "100%FREE"]));
  if (v.type === "striped") argv.push("--type", "striped", "--stripes", String(Math.max(1, members)));
  else if (v.type === "raid1") argv.push("--type", "raid1", "--mirrors", "1");
  argv.push(v.volumeGroup);
  await deps.runner.run(argv, { timeoutMs: DISK_TIMEOUTS.stepMs });
  await settle(deps.runner, v.device);
  await deps.waitForDevice(v.device);
}

/** mkfs for one filesystem; tmpfs and "none" have nothing on a disk. */
export async function format(deps: DiskDeps, fs: PlannedFilesystem): Promise<void> {
  const label = (flag: string) => (fs.label !== "" ? [flag, fs.label] : []);
  let argv: string[];
  switch (fs.format) {
    case "vfat":
      argv = ["mkfs.vfat", ...label("-n"), ...fs.createOptions, fs.device];
      break;
    case "ext3":
    case "ext4":
      // -F: the device may hold an old filesystem (or be a whole disk), mke2fs would ask.
      argv = [`mkfs.${fs.format}`, "-F", "-q", ...label("-L"), ...fs.createOptions, fs.device];
      break;
    case "swap":
      argv = ["mkswap", "-f", ...label("-L"), ...fs.createOptions, fs.device];
      break;
    case "tmpfs":
    case "none":
      return;
  }
  await deps.runner.run(argv, { timeoutMs: DISK_TIMEOUTS.mkfsMs });
}
