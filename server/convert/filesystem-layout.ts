import { create } from "@bufbuild/protobuf";
import { type FilesystemLayout, FilesystemLayoutSchema } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import type { FilesystemLayoutRow, NewFilesystemLayoutRow } from "../db/schema/index.js";
import type { LayoutSpec } from "../domain/filesystem-layout.js";
import { toProtoMeta } from "./meta.js";

/** The stored spec of a layout message. Sizes beyond 2^53 MiB are refused by validation first. */
export function layoutSpecFromProto(l: FilesystemLayout): LayoutSpec {
  return {
    filesystems: l.filesystems.map((f) => ({
      path: f.path,
      device: f.device,
      format: f.format,
      label: f.label,
      mountOptions: f.mountOptions,
      createOptions: f.createOptions,
    })),
    disks: l.disks.map((d) => ({
      device: d.device,
      partitions: d.partitions.map((p) => ({ number: p.number, label: p.label, sizeMib: Number(p.sizeMib), gptType: p.gptType })),
      wipeOnReinstall: d.wipeOnReinstall,
    })),
    raid: l.raid.map((r) => ({ arrayName: r.arrayName, devices: r.devices, level: r.level, createOptions: r.createOptions, spares: r.spares })),
    volumeGroups: l.volumeGroups.map((v) => ({ name: v.name, devices: v.devices, tags: v.tags })),
    logicalVolumes: l.logicalVolumes.map((v) => ({ name: v.name, volumeGroup: v.volumeGroup, sizeMib: Number(v.sizeMib), lvmType: v.lvmType })),
    constraints: { sizes: l.constraints?.sizes ?? [], images: { ...(l.constraints?.images ?? {}) } },
  };
}

export function layoutRowFromProto(l: FilesystemLayout): NewFilesystemLayoutRow {
  return { id: l.id, name: l.name, description: l.description, spec: layoutSpecFromProto(l) };
}

export function toProtoFilesystemLayout(row: FilesystemLayoutRow): FilesystemLayout {
  const s = row.spec;
  return create(FilesystemLayoutSchema, {
    id: row.id,
    name: row.name,
    description: row.description,
    filesystems: s.filesystems,
    disks: s.disks.map((d) => ({ ...d, partitions: d.partitions.map((p) => ({ ...p, sizeMib: BigInt(p.sizeMib) })) })),
    raid: s.raid,
    volumeGroups: s.volumeGroups,
    logicalVolumes: s.logicalVolumes.map((v) => ({ ...v, sizeMib: BigInt(v.sizeMib) })),
    constraints: s.constraints,
    meta: toProtoMeta(row),
  });
}
