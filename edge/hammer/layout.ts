import { type FilesystemLayout, Format, GptType, LvmType, RaidLevel } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import type { FormatName, GptTypeName, Inventory, PlannedDisk, PlannedFilesystem, PlannedRaid, PlannedVolume } from "./hardware.js";

/** What to do to the disks, in order: wipe, partition, RAID, LVM, format. */
export interface StoragePlan {
  wipe: string[];
  disks: PlannedDisk[];
  raid: PlannedRaid[];
  volumeGroups: { name: string; devices: string[] }[];
  volumes: PlannedVolume[];
  /** Only the filesystems to create; those on kept disks stay as they are. */
  format: PlannedFilesystem[];
  /** Every filesystem of the layout, for mounting and the install step. */
  filesystems: PlannedFilesystem[];
  /** The disk holding "/" (reported as boot info). */
  primaryDisk: string;
  /** The device of "/". */
  rootDevice: string;
}

export class LayoutError extends Error {}

/** /dev/sda + 1 = /dev/sda1; names ending in a digit (nvme0n1, md0, loop0) take a "p". */
export function partitionDevice(disk: string, n: number): string {
  return /\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`;
}

const GPT: Record<GptType, GptTypeName | undefined> = {
  [GptType.UNSPECIFIED]: "linux",
  [GptType.BOOT]: "boot",
  [GptType.LINUX]: "linux",
  [GptType.RAID]: "raid",
  [GptType.LVM]: "lvm",
};
const FORMATS: Record<Format, FormatName | undefined> = {
  [Format.UNSPECIFIED]: undefined,
  [Format.VFAT]: "vfat",
  [Format.EXT3]: "ext3",
  [Format.EXT4]: "ext4",
  [Format.SWAP]: "swap",
  [Format.TMPFS]: "tmpfs",
  [Format.NONE]: "none",
};
const MiB = 2n ** 20n;

/**
 * The disks a wipe covers. A machine that is free (first boot, or back after
 * being freed) loses everything on every disk, layout or not, so nothing of
 * the previous tenant survives; a reinstall keeps the disks the layout does
 * not mark wipeOnReinstall (tenant data the reinstall must not touch).
 */
export function disksToWipe(mode: "free" | "reinstall", disks: Inventory["disks"], layout?: FilesystemLayout): string[] {
  if (mode === "free") return disks.map((d) => d.name);
  if (!layout) throw new LayoutError("a reinstall needs the filesystem layout to know which disks it may wipe");
  const present = new Set(disks.map((d) => d.name));
  return layout.disks.filter((d) => d.wipeOnReinstall && present.has(d.device)).map((d) => d.device);
}

/**
 * Turns a filesystem layout into concrete steps for this machine's disks.
 * Refuses what cannot work before anything is touched: disks the machine
 * lacks, partitions that do not fit, a "rest of the disk" partition that is
 * not the last, filesystems on devices nothing creates, no root filesystem.
 * On a reinstall (`wiped` given) disks outside `wiped` keep their partitions
 * and the filesystems on them are not formatted again.
 */
export function planStorage(layout: FilesystemLayout, inventory: Pick<Inventory, "disks">, wiped?: string[]): StoragePlan {
  const sizes = new Map(inventory.disks.map((d) => [d.name, d.sizeBytes]));
  const devices = new Set<string>();
  const kept = new Set<string>();
  const disks: PlannedDisk[] = [];
  for (const d of layout.disks) {
    const size = sizes.get(d.device);
    if (size === undefined) throw new LayoutError(`layout "${layout.id}" needs disk ${d.device}, which the machine does not have`);
    const totalMib = Number(size / MiB);
    // GPT keeps a backup table in the last 33 sectors; leave the last MiB alone.
    const usableEnd = totalMib - 1;
    let start = 1;
    const parts = [...d.partitions].sort((a, b) => a.number - b.number);
    const planned = parts.map((p, i) => {
      const rest = p.sizeMib === 0n;
      if (rest && i !== parts.length - 1) throw new LayoutError(`${d.device}: partition ${p.number} takes the rest of the disk but is not the last one`);
      const end = rest ? usableEnd : start + Number(p.sizeMib);
      if (end > usableEnd || end <= start) throw new LayoutError(`${d.device}: partition ${p.number} does not fit on the disk (${totalMib} MiB)`);
      const part = { number: p.number, device: partitionDevice(d.device, p.number), label: p.label, gptType: GPT[p.gptType] ?? "linux", startMib: start, endMib: end };
      start = end;
      return part;
    });
    for (const p of planned) devices.add(p.device);
    const keep = wiped !== undefined && !wiped.includes(d.device);
    if (keep) planned.forEach((p) => kept.add(p.device));
    else disks.push({ device: d.device, partitions: planned });
  }
  const raid: PlannedRaid[] = layout.raid.map((r) => {
    const device = r.arrayName.startsWith("/dev/") ? r.arrayName : `/dev/md/${r.arrayName}`;
    for (const m of r.devices) if (!devices.has(m)) throw new LayoutError(`raid ${r.arrayName}: member ${m} is not a partition of the layout`);
    devices.add(device);
    return { device, level: r.level === RaidLevel.RAID_LEVEL_0 ? 0 : 1, devices: [...r.devices], spares: r.spares, createOptions: [...r.createOptions] };
  });
  const volumeGroups = layout.volumeGroups.map((vg) => {
    for (const m of vg.devices) if (!devices.has(m)) throw new LayoutError(`volume group ${vg.name}: device ${m} is not created by the layout`);
    return { name: vg.name, devices: [...vg.devices] };
  });
  const volumes: PlannedVolume[] = layout.logicalVolumes.map((lv) => {
    if (!volumeGroups.some((vg) => vg.name === lv.volumeGroup)) throw new LayoutError(`logical volume ${lv.name}: no volume group ${lv.volumeGroup}`);
    const device = `/dev/${lv.volumeGroup}/${lv.name}`;
    devices.add(device);
    const type = lv.lvmType === LvmType.STRIPED ? "striped" : lv.lvmType === LvmType.RAID1 ? "raid1" : "linear";
    return { volumeGroup: lv.volumeGroup, name: lv.name, device, sizeMib: Number(lv.sizeMib), type };
  });
  const filesystems: PlannedFilesystem[] = layout.filesystems.map((f) => {
    const format = FORMATS[f.format];
    if (!format) throw new LayoutError(`filesystem ${f.path || f.device}: no format given`);
    if (format !== "tmpfs" && !devices.has(f.device)) throw new LayoutError(`filesystem ${f.path || f.device}: device ${f.device} is not created by the layout`);
    return { device: f.device, path: f.path, format, label: f.label, mountOptions: [...f.mountOptions], createOptions: [...f.createOptions] };
  });
  const root = filesystems.find((f) => f.path === "/");
  if (!root) throw new LayoutError(`layout "${layout.id}" has no root filesystem`);
  const primaryDisk = layout.disks.find((d) => d.partitions.some((p) => partitionDevice(d.device, p.number) === root.device))?.device ?? "";
  const wipe = wiped ?? [];
  if (primaryDisk !== "" && wiped !== undefined && !wiped.includes(primaryDisk)) {
    throw new LayoutError(`reinstall: the root filesystem is on ${primaryDisk}, which the layout does not allow to wipe`);
  }
  return {
    wipe,
    disks,
    raid,
    volumeGroups,
    volumes,
    format: filesystems.filter((f) => f.format !== "none" && f.format !== "tmpfs" && !kept.has(f.device)),
    filesystems,
    primaryDisk,
    rootDevice: root.device,
  };
}
