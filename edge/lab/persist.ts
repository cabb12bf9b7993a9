import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { BootTarget, SimFilesystem, SimMachine } from "../sim/machine.js";
import type { PlannedPartition, PlannedRaid, PlannedVolume } from "../hammer/hardware.js";

/** What a simulated machine keeps across lab restarts: its identity, boot order and disks (a real machine keeps those when the lab host reboots). */
export interface StoredMachine {
  uuid: string;
  bootOrder: BootTarget;
  disks?: { name: string; partitions: PlannedPartition[]; wipes: number }[];
  filesystems?: Record<string, { format: SimFilesystem["format"]; label: string; files: Record<string, string> }>;
  raids?: Record<string, PlannedRaid>;
  volumeGroups?: Record<string, string[]>;
  volumes?: Record<string, PlannedVolume>;
}

interface StateFile {
  version: 1;
  machines: StoredMachine[];
}

/** The stored machines, extended with fresh ones up to `count` (a larger --machines adds machines, a smaller one leaves the rest unpowered). */
export async function loadMachines(file: string, count: number): Promise<StoredMachine[]> {
  let stored: StoredMachine[] = [];
  try {
    const doc = JSON.parse(await readFile(file, "utf8")) as StateFile;
    if (doc.version === 1 && Array.isArray(doc.machines)) stored = doc.machines;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`${file}: ${(err as Error).message}`);
  }
  while (stored.length < count) stored.push({ uuid: randomUUID(), bootOrder: "pxe" });
  return stored;
}

export function snapshot(m: SimMachine): StoredMachine {
  return {
    uuid: m.uuid,
    bootOrder: m.bootOrder,
    disks: m.disks.map((d) => ({ name: d.name, partitions: d.partitions, wipes: d.wipes })),
    filesystems: Object.fromEntries([...m.filesystems].map(([dev, fs]) => [dev, { format: fs.format, label: fs.label, files: Object.fromEntries(fs.files) }])),
    raids: Object.fromEntries(m.raids),
    volumeGroups: Object.fromEntries(m.volumeGroups),
    volumes: Object.fromEntries(m.volumes),
  };
}

/** Puts a stored machine's disks back (before it is powered on). */
export function restore(m: SimMachine, s: StoredMachine): void {
  m.setBootOrder(s.bootOrder);
  for (const d of s.disks ?? []) {
    const disk = m.disks.find((x) => x.name === d.name);
    if (disk) (disk.partitions = d.partitions, disk.wipes = d.wipes);
  }
  for (const [dev, fs] of Object.entries(s.filesystems ?? {})) m.filesystems.set(dev, { format: fs.format, label: fs.label, files: new Map(Object.entries(fs.files)) });
  for (const [dev, r] of Object.entries(s.raids ?? {})) m.raids.set(dev, r);
  for (const [vg, members] of Object.entries(s.volumeGroups ?? {})) m.volumeGroups.set(vg, members);
  for (const [dev, v] of Object.entries(s.volumes ?? {})) m.volumes.set(dev, v);
}

/** Written whole through a temporary file, so a crash leaves the previous state, never half of one. */
export async function saveMachines(file: string, machines: StoredMachine[]): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ version: 1, machines } satisfies StateFile));
  await rename(tmp, file);
}
