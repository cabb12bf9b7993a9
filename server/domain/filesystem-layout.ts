import { isValidRange, rangesIntersect, versionSatisfies } from "./image-version.js";
import { imageRangeProblems } from "./size-image-constraint.js";
import type { Problem } from "./size.js";

// Enum values as in the proto (metal.api.v1), kept here so the rules stay free of generated types.
export const Format = { VFAT: 1, EXT3: 2, EXT4: 3, SWAP: 4, TMPFS: 5, NONE: 6 } as const;
export const GptType = { BOOT: 1, LINUX: 2, RAID: 3, LVM: 4 } as const;
export const RaidLevel = { RAID0: 1, RAID1: 2 } as const;
export const LvmType = { LINEAR: 1, STRIPED: 2, RAID1: 3 } as const;

export interface LayoutSpec {
  filesystems: { path: string; device: string; format: number; label: string; mountOptions: string[]; createOptions: string[] }[];
  disks: { device: string; partitions: { number: number; label: string; sizeMib: number; gptType: number }[]; wipeOnReinstall: boolean }[];
  raid: { arrayName: string; devices: string[]; level: number; createOptions: string[]; spares: number }[];
  volumeGroups: { name: string; devices: string[]; tags: string[] }[];
  logicalVolumes: { name: string; volumeGroup: string; sizeMib: number; lvmType: number }[];
  constraints: { sizes: string[]; images: Record<string, string> };
}

/** "/dev/sda" + 1 -> "/dev/sda1"; disks whose name ends in a digit take a "p": "/dev/nvme0n1p1". */
export function partitionDevice(disk: string, number: number): string {
  return /\d$/.test(disk) ? `${disk}p${number}` : `${disk}${number}`;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const hasWhitespace = (s: string) => /\s/.test(s);

/**
 * Every problem of a layout, each at its field path. Devices referenced by
 * RAID arrays, volume groups and filesystems must be created by the layout
 * itself (partitions, arrays, logical volumes) or be tmpfs.
 */
export function layoutProblems(l: LayoutSpec): Problem[] {
  const problems: Problem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  const partitions = new Set<string>();
  const arrays = new Set<string>();
  const volumes = new Set<string>();

  const disks = new Set<string>();
  l.disks.forEach((d, i) => {
    const p = `disks[${i}]`;
    if (!/^\/dev\/[A-Za-z0-9/_.-]+$/.test(d.device)) add(`${p}.device`, `"${d.device}" must be a device path like /dev/sda`);
    if (disks.has(d.device)) add(`${p}.device`, `"${d.device}" appears twice`);
    disks.add(d.device);
    const numbers = new Set<number>();
    const labels = new Set<string>();
    d.partitions.forEach((part, j) => {
      const pp = `${p}.partitions[${j}]`;
      if (part.number < 1 || part.number > 128) add(`${pp}.number`, "must be between 1 and 128");
      if (numbers.has(part.number)) add(`${pp}.number`, `partition ${part.number} appears twice`);
      numbers.add(part.number);
      if (part.label !== "") {
        if (labels.has(part.label)) add(`${pp}.label`, `"${part.label}" appears twice on this disk`);
        labels.add(part.label);
      }
      if (part.sizeMib === 0 && j !== d.partitions.length - 1) add(`${pp}.size_mib`, "only the last partition may take the rest of the disk (size 0)");
      if (!Object.values(GptType).includes(part.gptType as never)) add(`${pp}.gpt_type`, "must be set");
      partitions.add(partitionDevice(d.device, part.number));
    });
  });

  l.raid.forEach((r, i) => {
    const p = `raid[${i}]`;
    if (!NAME.test(r.arrayName)) add(`${p}.array_name`, `"${r.arrayName}" must be letters, digits, '.', '_' or '-'`);
    const dev = `/dev/md/${r.arrayName}`;
    if (arrays.has(dev)) add(`${p}.array_name`, `"${r.arrayName}" appears twice`);
    arrays.add(dev);
    if (!Object.values(RaidLevel).includes(r.level as never)) add(`${p}.level`, "must be 0 or 1");
    if (r.devices.length < 2) add(`${p}.devices`, "a RAID array needs at least two devices");
    r.devices.forEach((d, j) => {
      if (!partitions.has(d)) add(`${p}.devices[${j}]`, `"${d}" is not a partition of this layout`);
    });
    if (r.spares < 0 || r.spares >= r.devices.length) add(`${p}.spares`, "must be at least 0 and fewer than the devices");
    r.createOptions.forEach((o, j) => hasWhitespace(o) && add(`${p}.create_options[${j}]`, "must not contain whitespace"));
  });

  const groups = new Map<string, number>();
  l.volumeGroups.forEach((vg, i) => {
    const p = `volume_groups[${i}]`;
    if (!NAME.test(vg.name)) add(`${p}.name`, `"${vg.name}" must be letters, digits, '.', '_' or '-'`);
    if (groups.has(vg.name)) add(`${p}.name`, `"${vg.name}" appears twice`);
    groups.set(vg.name, vg.devices.length);
    if (vg.devices.length === 0) add(`${p}.devices`, "a volume group needs at least one device");
    vg.devices.forEach((d, j) => {
      if (!partitions.has(d) && !arrays.has(d)) add(`${p}.devices[${j}]`, `"${d}" is neither a partition nor a RAID array of this layout`);
    });
  });

  l.logicalVolumes.forEach((lv, i) => {
    const p = `logical_volumes[${i}]`;
    if (!NAME.test(lv.name)) add(`${p}.name`, `"${lv.name}" must be letters, digits, '.', '_' or '-'`);
    const devices = groups.get(lv.volumeGroup);
    if (devices === undefined) add(`${p}.volume_group`, `"${lv.volumeGroup}" is not a volume group of this layout`);
    if (!Object.values(LvmType).includes(lv.lvmType as never)) add(`${p}.lvm_type`, "must be set");
    if ((lv.lvmType === LvmType.STRIPED || lv.lvmType === LvmType.RAID1) && devices !== undefined && devices < 2) {
      add(`${p}.lvm_type`, `striped and raid1 volumes need a volume group of more than one device; "${lv.volumeGroup}" has ${devices}`);
    }
    const dev = `/dev/${lv.volumeGroup}/${lv.name}`;
    if (volumes.has(dev)) add(`${p}.name`, `"${lv.name}" appears twice in "${lv.volumeGroup}"`);
    volumes.add(dev);
    const laterInGroup = l.logicalVolumes.slice(i + 1).some((o) => o.volumeGroup === lv.volumeGroup);
    if (lv.sizeMib === 0 && laterInGroup) add(`${p}.size_mib`, "only the last volume of a group may take the rest (size 0)");
  });

  const paths = new Set<string>();
  l.filesystems.forEach((fs, i) => {
    const p = `filesystems[${i}]`;
    if (!Object.values(Format).includes(fs.format as never)) add(`${p}.format`, "must be set");
    const known = partitions.has(fs.device) || arrays.has(fs.device) || volumes.has(fs.device) || (fs.format === Format.TMPFS && fs.device === "tmpfs");
    if (!known) add(`${p}.device`, `"${fs.device}" is not a partition, RAID array or logical volume of this layout`);
    const mounted = fs.format !== Format.SWAP && fs.format !== Format.NONE;
    if (mounted && !fs.path.startsWith("/")) add(`${p}.path`, "must be an absolute path");
    if (fs.path !== "") {
      if (paths.has(fs.path)) add(`${p}.path`, `"${fs.path}" is mounted twice`);
      paths.add(fs.path);
    }
    if (fs.label.length > 64) add(`${p}.label`, "must be at most 64 characters");
    fs.createOptions.forEach((o, j) => hasWhitespace(o) && add(`${p}.create_options[${j}]`, "must not contain whitespace"));
    fs.mountOptions.forEach((o, j) => hasWhitespace(o) && add(`${p}.mount_options[${j}]`, "must not contain whitespace"));
  });

  if (l.constraints.sizes.length === 0) add("constraints.sizes", "at least one size is required");
  l.constraints.sizes.forEach((s, i) => {
    if (/[*?[\]]/.test(s)) add(`constraints.sizes[${i}]`, "wildcards are not allowed; name each size");
    else if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(s)) add(`constraints.sizes[${i}]`, `"${s}" is not a size id`);
  });
  problems.push(...imageRangeProblems("constraints.images", l.constraints.images));
  return problems;
}

/**
 * Whether two layouts could both apply to one machine: they share a size and
 * their image constraints admit a common image. An empty image map admits
 * every image; OSes named by only one side are admitted by the other only if
 * its map is empty.
 */
export function layoutsOverlap(a: LayoutSpec["constraints"], b: LayoutSpec["constraints"]): boolean {
  if (!a.sizes.some((s) => b.sizes.includes(s))) return false;
  const aAll = Object.keys(a.images).length === 0;
  const bAll = Object.keys(b.images).length === 0;
  if (aAll || bAll) return true;
  return Object.entries(a.images).some(([os, range]) => {
    const other = b.images[os];
    return other !== undefined && isValidRange(range) && isValidRange(other) && rangesIntersect(range, other);
  });
}

/** Whether a layout is for this size and image. */
export function layoutMatches(c: LayoutSpec["constraints"], sizeId: string, image: { os: string; version: string }): boolean {
  if (!c.sizes.includes(sizeId)) return false;
  if (Object.keys(c.images).length === 0) return true;
  const range = c.images[image.os];
  return range !== undefined && versionSatisfies(image.version, range);
}

/** The layout a machine gets: the first by id that matches (there is at most one, as overlaps are refused). */
export function selectLayout<T extends { id: string; spec: LayoutSpec }>(layouts: readonly T[], sizeId: string, image: { os: string; version: string }): T | undefined {
  return [...layouts].sort((x, y) => (x.id < y.id ? -1 : 1)).find((l) => layoutMatches(l.spec.constraints, sizeId, image));
}
