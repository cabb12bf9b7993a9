import type { FilesystemLayout } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { layoutSpecFromProto } from "../convert/filesystem-layout.js";
import { layoutProblems } from "../domain/filesystem-layout.js";
import { type Validator, validator } from "./validator.js";

const MAX_ITEMS = 64;
const MAX_OPTIONS = 32;

/** Bounds that keep a hostile request from costing much before the rules run. */
function bounds(v: Validator, l: FilesystemLayout): void {
  const P = "filesystem_layout";
  const lists: [string, readonly unknown[]][] = [
    ["filesystems", l.filesystems],
    ["disks", l.disks],
    ["raid", l.raid],
    ["volume_groups", l.volumeGroups],
    ["logical_volumes", l.logicalVolumes],
    ["constraints.sizes", l.constraints?.sizes ?? []],
  ];
  for (const [field, items] of lists) if (items.length > MAX_ITEMS) v.add(`${P}.${field}`, `must have at most ${MAX_ITEMS} entries`);
  l.disks.forEach((d, i) => d.partitions.length > 128 && v.add(`${P}.disks[${i}].partitions`, "must have at most 128 entries"));
  const optionLists: [string, readonly string[]][] = [
    ...l.filesystems.flatMap((f, i): [string, readonly string[]][] => [
      [`filesystems[${i}].mount_options`, f.mountOptions],
      [`filesystems[${i}].create_options`, f.createOptions],
    ]),
    ...l.raid.flatMap((r, i): [string, readonly string[]][] => [
      [`raid[${i}].devices`, r.devices],
      [`raid[${i}].create_options`, r.createOptions],
    ]),
    ...l.volumeGroups.flatMap((g, i): [string, readonly string[]][] => [
      [`volume_groups[${i}].devices`, g.devices],
      [`volume_groups[${i}].tags`, g.tags],
    ]),
  ];
  for (const [field, items] of optionLists) {
    if (items.length > MAX_OPTIONS) v.add(`${P}.${field}`, `must have at most ${MAX_OPTIONS} entries`);
    items.forEach((s, j) => s.length > 256 && v.add(`${P}.${field}[${j}]`, "must be at most 256 characters"));
  }
  const strings = [
    ...l.filesystems.flatMap((f) => [f.path, f.device, f.label]),
    ...l.disks.flatMap((d) => [d.device, ...d.partitions.map((p) => p.label)]),
    ...l.raid.map((r) => r.arrayName),
    ...l.volumeGroups.map((g) => g.name),
    ...l.logicalVolumes.flatMap((x) => [x.name, x.volumeGroup]),
  ];
  if (strings.some((s) => s.length > 256)) v.add(P, "names, devices, labels and paths must be at most 256 characters");
  l.disks.forEach((d, i) => d.partitions.forEach((p, j) => p.sizeMib > BigInt(Number.MAX_SAFE_INTEGER) && v.add(`${P}.disks[${i}].partitions[${j}].size_mib`, "must be below 2^53")));
  l.logicalVolumes.forEach((x, i) => x.sizeMib > BigInt(Number.MAX_SAFE_INTEGER) && v.add(`${P}.logical_volumes[${i}].size_mib`, "must be below 2^53"));
}

/**
 * Checks a layout of a create or update request: id, bounds, then every rule
 * of `layoutProblems`, each reported at `filesystem_layout.<path>`.
 */
export function validateFilesystemLayout(l: FilesystemLayout | undefined, opts: { update: boolean }): asserts l is FilesystemLayout {
  const v = validator();
  if (!l) return v.add("filesystem_layout", "is required").check();
  v.id("filesystem_layout.id", l.id).text("filesystem_layout.name", l.name, 128).text("filesystem_layout.description", l.description, 1024);
  if (opts.update && !l.meta?.version) v.add("filesystem_layout.meta.version", "is required: send the version you read");
  if (!l.constraints) v.add("filesystem_layout.constraints", "is required: name the sizes the layout is for");
  bounds(v, l);
  v.check();
  for (const p of layoutProblems(layoutSpecFromProto(l))) v.add(`filesystem_layout.${p.path}`, p.message);
  v.check();
}
