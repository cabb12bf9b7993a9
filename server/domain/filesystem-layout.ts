import { rangesIntersect, satisfies } from "./semver.js";
import { imageRangeProblems, type Problem } from "./size-image-constraint.js";

// Enum values as in the proto (metal.api.v1); kept here so the rules stay free of
// generated types (a unit test checks that both agree).
export const Format = { VFAT: 1, EXT3: 2, EXT4: 3, SWAP: 4, TMPFS: 5, NONE: 6 } as const;
export const GptType = { BOOT: 1, LINUX: 2, RAID: 3, LVM: 4 } as const;
export const RaidLevel = { RAID0: 1, RAID1: 2 } as const;
export const LvmType = { LINEAR: 1, STRIPED: 2, RAID1: 3 } as const;

export interface LayoutFilesystem {
  path: string;
  device: string;
  format: number;
  label: string;
  mountOptions: string[];
  createOptions: string[];
}
export interface LayoutPartition {
  number: number;
  label: string;
  /** MiB; 0 takes the rest of the disk. */
  sizeMib: number;
  gptType: number;
}
export interface LayoutDisk {
  device: string;
  partitions: LayoutPartition[];
  wipeOnReinstall: boolean;
}
export interface LayoutRaid {
  arrayName: string;
  devices: string[];
  level: number;
  createOptions: string[];
  spares: number;
}
export interface LayoutVolumeGroup {
  name: string;
  devices: string[];
  tags: string[];
}
export interface LayoutLogicalVolume {
  name: string;
  volumeGroup: string;
  /** MiB; 0 takes the rest of the volume group. */
  sizeMib: number;
  lvmType: number;
}
export interface LayoutConstraints {
  /** Size ids, no wildcards. */
  sizes: string[];
  /** OS -> semver range; empty admits every image. */
  images: Record<string, string>;
}

/** Everything of a filesystem layout but its id, name and bookkeeping: what is stored as one JSON document. */
export interface LayoutSpec {
  filesystems: LayoutFilesystem[];
  disks: LayoutDisk[];
  raid: LayoutRaid[];
  volumeGroups: LayoutVolumeGroup[];
  logicalVolumes: LayoutLogicalVolume[];
  constraints: LayoutConstraints;
}

/** "/dev/sda" + 1 -> "/dev/sda1"; a disk whose name ends in a digit takes a "p": "/dev/nvme0n1" + 1 -> "/dev/nvme0n1p1". */
export function partitionDevice(disk: string, number: number): string {
  return /\d$/.test(disk) ? `${disk}p${number}` : `${disk}${number}`;
}

/** The device of a RAID array: "/dev/md/<name>". */
export const raidDevice = (arrayName: string): string => `/dev/md/${arrayName}`;

/** The device of a logical volume: "/dev/<volume group>/<name>". */
export const logicalVolumeDevice = (volumeGroup: string, name: string): string => `/dev/${volumeGroup}/${name}`;

/** The device of a tmpfs filesystem. */
export const TMPFS_DEVICE = "tmpfs";

const DISK = /^\/dev\/[A-Za-z0-9][A-Za-z0-9/_.-]{0,62}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const PATH = /^\/[^\s]{0,255}$/;
const SIZE_ID = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
const hasWhitespace = (s: string) => /\s/.test(s);
const q = (s: string) => `"${s.length > 64 ? `${s.slice(0, 64)}…` : s}"`;

type DeviceKind = "partition" | "disk" | "raid" | "lv";
interface Provided {
  kind: DeviceKind;
  /** A disk that has partitions must not be used whole. */
  partitioned?: boolean;
}

const KIND_NAMES: Record<DeviceKind, string> = { partition: "a partition", disk: "a disk", raid: "a RAID array", lv: "a logical volume" };

function kindsText(kinds: readonly DeviceKind[]): string {
  const names = kinds.map((k) => KIND_NAMES[k]);
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}`;
}

/**
 * Every problem of a layout, each at its field path, e.g.
 * `disks[0].partitions[1].size_mib: only the last partition may take the rest of the disk (size 0)`.
 *
 * Devices come from the layout itself: partitions (disk device + number),
 * disks without partitions, RAID arrays (/dev/md/<name>) and logical volumes
 * (/dev/<vg>/<lv>). RAID arrays are built from partitions or whole disks,
 * volume groups from those or arrays, filesystems sit on any of them (tmpfs on
 * "tmpfs"), and every device is used at most once.
 */
export function layoutProblems(l: LayoutSpec): Problem[] {
  const problems: Problem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  const provided = new Map<string, Provided>();
  const usedBy = new Map<string, string>();

  /** Checks a device reference against what the layout provides and records its use. */
  const use = (path: string, device: string, kinds: readonly DeviceKind[], user: string) => {
    const p = provided.get(device);
    if (!p || !kinds.includes(p.kind)) {
      add(path, `${q(device)} is not ${kindsText(kinds)} of this layout`);
      return;
    }
    if (p.partitioned) {
      add(path, `${q(device)} is a disk with partitions; name one of its partitions`);
      return;
    }
    const before = usedBy.get(device);
    if (before) add(path, `${q(device)} is already used by ${before}`);
    else usedBy.set(device, user);
  };

  // Disks and their partitions.
  const partitionLabels = new Map<string, string>();
  l.disks.forEach((d, i) => {
    const p = `disks[${i}]`;
    if (!DISK.test(d.device)) add(`${p}.device`, `${q(d.device)} must be a device path like /dev/sda or /dev/nvme0n1`);
    else if (provided.has(d.device)) add(`${p}.device`, `${q(d.device)} appears twice`);
    provided.set(d.device, { kind: "disk", partitioned: d.partitions.length > 0 });
    const numbers = new Set<number>();
    d.partitions.forEach((part, j) => {
      const pp = `${p}.partitions[${j}]`;
      if (!Number.isInteger(part.number) || part.number < 1 || part.number > 128) add(`${pp}.number`, "must be between 1 and 128");
      else if (numbers.has(part.number)) add(`${pp}.number`, `partition ${part.number} appears twice on ${q(d.device)}`);
      numbers.add(part.number);
      if (part.label === "") {
        // Optional, as in the original: an unlabelled partition is addressed by its device.
      } else if (part.label.length > 36 || !NAME.test(part.label)) add(`${pp}.label`, `${q(part.label)} must be up to 36 letters, digits, '.', '_' or '-'`);
      else if (partitionLabels.has(part.label)) add(`${pp}.label`, `${q(part.label)} is already the label of ${partitionLabels.get(part.label)}`);
      else partitionLabels.set(part.label, pp);
      if (part.sizeMib === 0 && j !== d.partitions.length - 1) add(`${pp}.size_mib`, "only the last partition may take the rest of the disk (size 0)");
      if (!Object.values(GptType).includes(part.gptType as never)) add(`${pp}.gpt_type`, "must be set to boot (ef00), linux (8300), raid (fd00) or lvm (8e00)");
      provided.set(partitionDevice(d.device, part.number), { kind: "partition" });
    });
  });

  // RAID arrays over partitions or whole disks.
  const arrayNames = new Set<string>();
  l.raid.forEach((r, i) => {
    const p = `raid[${i}]`;
    if (!NAME.test(r.arrayName)) add(`${p}.array_name`, `${q(r.arrayName)} must be letters, digits, '.', '_' or '-'`);
    else if (arrayNames.has(r.arrayName)) add(`${p}.array_name`, `${q(r.arrayName)} appears twice`);
    arrayNames.add(r.arrayName);
    if (!Object.values(RaidLevel).includes(r.level as never)) add(`${p}.level`, "must be set to 0 or 1");
    if (r.devices.length < 2) add(`${p}.devices`, `a RAID array needs more than one device; it has ${r.devices.length}`);
    r.devices.forEach((d, j) => use(`${p}.devices[${j}]`, d, ["partition", "disk"], `raid[${i}] (${r.arrayName})`));
    if (!Number.isInteger(r.spares) || r.spares < 0) add(`${p}.spares`, "must not be negative");
    else if (r.devices.length >= 2 && r.devices.length - r.spares < 2) add(`${p}.spares`, `leaves ${r.devices.length - r.spares} active device(s); an array needs at least two`);
    r.createOptions.forEach((o, j) => hasWhitespace(o) && add(`${p}.create_options[${j}]`, `${q(o)} must not contain whitespace; pass each option as its own entry`));
    provided.set(raidDevice(r.arrayName), { kind: "raid" });
  });

  // Volume groups over partitions, whole disks or arrays.
  const groups = new Map<string, number>();
  l.volumeGroups.forEach((vg, i) => {
    const p = `volume_groups[${i}]`;
    if (!NAME.test(vg.name)) add(`${p}.name`, `${q(vg.name)} must be letters, digits, '.', '_' or '-'`);
    else if (groups.has(vg.name)) add(`${p}.name`, `${q(vg.name)} appears twice`);
    groups.set(vg.name, vg.devices.length);
    if (vg.devices.length === 0) add(`${p}.devices`, "a volume group needs at least one device");
    vg.devices.forEach((d, j) => use(`${p}.devices[${j}]`, d, ["partition", "disk", "raid"], `volume_groups[${i}] (${vg.name})`));
    vg.tags.forEach((t, j) => !/^[A-Za-z0-9_+.\-/=!:&#]{1,128}$/.test(t) && add(`${p}.tags[${j}]`, `${q(t)} must be 1 to 128 of A-Z a-z 0-9 _ + . - / = ! : & #`));
  });

  // Logical volumes inside the groups.
  l.logicalVolumes.forEach((lv, i) => {
    const p = `logical_volumes[${i}]`;
    if (!NAME.test(lv.name)) add(`${p}.name`, `${q(lv.name)} must be letters, digits, '.', '_' or '-'`);
    const devices = groups.get(lv.volumeGroup);
    if (devices === undefined) add(`${p}.volume_group`, `${q(lv.volumeGroup)} is not a volume group of this layout`);
    if (!Object.values(LvmType).includes(lv.lvmType as never)) add(`${p}.lvm_type`, "must be set to linear, striped or raid1");
    else if (lv.lvmType !== LvmType.LINEAR && devices !== undefined && devices < 2) {
      add(`${p}.lvm_type`, `striped and raid1 volumes need a volume group of more than one device; ${q(lv.volumeGroup)} has ${devices}`);
    }
    const dev = logicalVolumeDevice(lv.volumeGroup, lv.name);
    if (provided.has(dev)) add(`${p}.name`, `${q(lv.name)} appears twice in volume group ${q(lv.volumeGroup)}`);
    provided.set(dev, { kind: "lv" });
    const laterInGroup = l.logicalVolumes.slice(i + 1).some((o) => o.volumeGroup === lv.volumeGroup);
    if (lv.sizeMib === 0 && laterInGroup) add(`${p}.size_mib`, "only the last volume of a volume group may take the rest (size 0)");
  });

  // Filesystems on any device (tmpfs on "tmpfs").
  const paths = new Map<string, number>();
  const labels = new Map<string, number>();
  l.filesystems.forEach((fs, i) => {
    const p = `filesystems[${i}]`;
    const formatKnown = Object.values(Format).includes(fs.format as never);
    if (!formatKnown) add(`${p}.format`, "must be set to vfat, ext3, ext4, swap, tmpfs or none");
    if (fs.format === Format.TMPFS || fs.device === TMPFS_DEVICE) {
      if (fs.format !== Format.TMPFS || fs.device !== TMPFS_DEVICE) add(`${p}.device`, `format tmpfs goes with device "${TMPFS_DEVICE}" and only with it`);
    } else {
      use(`${p}.device`, fs.device, ["partition", "disk", "raid", "lv"], `filesystems[${i}]`);
    }
    const mounted = formatKnown && fs.format !== Format.SWAP && fs.format !== Format.NONE;
    if (mounted && !PATH.test(fs.path)) add(`${p}.path`, `${q(fs.path)} must be an absolute path without whitespace`);
    if (!mounted && formatKnown && fs.path !== "") add(`${p}.path`, "must be empty: swap and unformatted devices are not mounted");
    if (fs.path !== "") {
      if (paths.has(fs.path)) add(`${p}.path`, `${q(fs.path)} is already mounted by filesystems[${paths.get(fs.path)}]`);
      else paths.set(fs.path, i);
    }
    if (fs.label !== "") {
      const max = fs.format === Format.VFAT ? 11 : 16;
      if (fs.label.length > max || !NAME.test(fs.label)) add(`${p}.label`, `${q(fs.label)} must be up to ${max} letters, digits, '.', '_' or '-'`);
      else if (labels.has(fs.label)) add(`${p}.label`, `${q(fs.label)} is already the label of filesystems[${labels.get(fs.label)}]`);
      else labels.set(fs.label, i);
    }
    fs.createOptions.forEach((o, j) => hasWhitespace(o) && add(`${p}.create_options[${j}]`, `${q(o)} must not contain whitespace; pass each option as its own entry`));
    fs.mountOptions.forEach((o, j) => hasWhitespace(o) && add(`${p}.mount_options[${j}]`, `${q(o)} must not contain whitespace`));
  });

  // What the layout is for.
  if (l.constraints.sizes.length === 0) add("constraints.sizes", "at least one size is required");
  const sizes = new Set<string>();
  l.constraints.sizes.forEach((s, i) => {
    const p = `constraints.sizes[${i}]`;
    if (/[*?[\]]/.test(s)) add(p, `${q(s)}: wildcards are not allowed; name each size`);
    else if (s.length > 63 || !SIZE_ID.test(s)) add(p, `${q(s)} is not a size id`);
    else if (sizes.has(s)) add(p, `${q(s)} appears twice`);
    sizes.add(s);
  });
  problems.push(...imageRangeProblems("constraints.images", l.constraints.images));
  return problems;
}

/**
 * Whether two layouts could both apply to one machine: they share a size and
 * their image constraints admit a common image. An empty image map admits
 * every image; otherwise only the OSes it names, in the ranges given.
 */
export function layoutsOverlap(a: LayoutConstraints, b: LayoutConstraints): boolean {
  if (!a.sizes.some((s) => b.sizes.includes(s))) return false;
  if (Object.keys(a.images).length === 0 || Object.keys(b.images).length === 0) return true;
  return Object.entries(a.images).some(([os, range]) => {
    const other = b.images[os];
    return other !== undefined && rangesIntersect(range, other);
  });
}

/** Whether a layout is for this size and image (an image version without a patch part matches only an empty image map). */
export function layoutMatches(c: LayoutConstraints, sizeId: string, image: { os: string; version: string }): boolean {
  if (!c.sizes.includes(sizeId)) return false;
  if (Object.keys(c.images).length === 0) return true;
  const range = c.images[image.os];
  return range !== undefined && satisfies(image.version, range);
}

/**
 * The layout a machine of a size installed with an image gets: the first by
 * id that matches. Overlaps are refused when layouts are stored, so there is
 * at most one; the order only makes the answer deterministic regardless.
 */
export function selectLayout<T extends { id: string; spec: LayoutSpec }>(layouts: readonly T[], sizeId: string, image: { os: string; version: string }): T | undefined {
  return [...layouts].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)).find((l) => layoutMatches(l.spec.constraints, sizeId, image));
}

/**
 * Why a layout does not fit a machine's disks: every disk it partitions must
 * exist, and the fixed-size partitions must fit on it (a size of 0 takes the
 * rest, which must then be at least 1 MiB). Empty when it fits.
 */
export function layoutDiskProblems(l: Pick<LayoutSpec, "disks">, disks: readonly { name: string; sizeBytes: number }[]): string[] {
  const MiB = 1024 * 1024;
  const problems: string[] = [];
  for (const d of l.disks) {
    const disk = disks.find((x) => x.name === d.device);
    if (!disk) {
      problems.push(`disk ${d.device} does not exist`);
      continue;
    }
    const fixed = d.partitions.reduce((sum, p) => sum + p.sizeMib, 0) * MiB;
    const needsRest = d.partitions.some((p) => p.sizeMib === 0);
    if (fixed + (needsRest ? MiB : 0) > disk.sizeBytes) {
      problems.push(`disk ${d.device} has ${disk.sizeBytes} bytes, the layout needs ${fixed + (needsRest ? MiB : 0)}`);
    }
  }
  return problems;
}

/** A layout can be reinstalled only if it wipes at least one disk (the OS disk) and keeps the rest. */
export const layoutReinstallable = (l: Pick<LayoutSpec, "disks">): boolean => l.disks.some((d) => d.wipeOnReinstall);
