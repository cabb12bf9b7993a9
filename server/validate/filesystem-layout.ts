import type { FilesystemLayout } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { layoutSpecFromProto } from "../convert/filesystem-layout.js";
import { layoutProblems } from "../domain/filesystem-layout.js";
import { validator } from "./validator.js";

const MAX_ITEMS = 64;

export function validateFilesystemLayout(l: FilesystemLayout | undefined, opts: { update: boolean }): void {
  const v = validator();
  if (!l) return v.add("filesystem_layout", "is required").check();
  v.id("filesystem_layout.id", l.id).text("filesystem_layout.name", l.name, 128).text("filesystem_layout.description", l.description, 1024);
  if (opts.update && !l.meta?.version) v.add("filesystem_layout.meta.version", "is required: send the version you read");
  const counts = { filesystems: l.filesystems.length, disks: l.disks.length, raid: l.raid.length, volume_groups: l.volumeGroups.length, logical_volumes: l.logicalVolumes.length };
  for (const [field, n] of Object.entries(counts)) if (n > MAX_ITEMS) v.add(`filesystem_layout.${field}`, `must have at most ${MAX_ITEMS} entries`);
  const huge = [...l.disks.flatMap((d) => d.partitions.map((p) => p.sizeMib)), ...l.logicalVolumes.map((x) => x.sizeMib)].some((n) => n > BigInt(Number.MAX_SAFE_INTEGER));
  if (huge) v.add("filesystem_layout", "sizes must be below 2^53 MiB");
  v.check();
  for (const p of layoutProblems(layoutSpecFromProto(l))) v.add(`filesystem_layout.${p.path}`, p.message);
  v.check();
}
