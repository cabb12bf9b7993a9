import { randomUUID } from "node:crypto";
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import type { PlannedPartition, PlannedRaid, PlannedVolume } from "../hammer/hardware.js";
import type { BootTarget, SimFilesystem, SimMachine } from "../sim/machine.js";

/** Who a simulated machine is: what the control plane knows it by, so it must never change across lab restarts. */
export interface MachineIdentity {
  uuid: string;
  /** The MACs of its NICs, eth0 first. */
  macs: string[];
  bmc: { ip: string; mac: string };
}

/** What a simulated machine keeps across lab restarts: its identity, boot order and disks (a real machine keeps those when the lab host reboots). */
export interface StoredMachine {
  uuid: string;
  /** Written before the machine first boots; absent only in state files of older labs (then derived from its position, as they did). */
  macs?: string[];
  bmc?: { ip: string; mac: string };
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

/**
 * The stored machines, extended with fresh ones up to `count` (a larger
 * --machines adds machines, a smaller one leaves the rest unpowered), each
 * with its identity (`identityOf` gives the identity of a new machine at a
 * position, or fills in an older file's). When anything was added, the file
 * is written durably before this returns: a machine must exist on disk
 * before it first boots, or a crash before the next save would bring back
 * other machines under the same BMC addresses and MACs, and the control plane
 * would keep the lost ones as records colliding with them.
 */
export async function loadMachines(file: string, count: number, identityOf: (index: number, uuid: string) => MachineIdentity): Promise<StoredMachine[]> {
  let stored: StoredMachine[] = [];
  try {
    const doc = JSON.parse(await readFile(file, "utf8")) as StateFile;
    if (doc.version === 1 && Array.isArray(doc.machines)) stored = doc.machines;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`${file}: ${(err as Error).message}`);
  }
  let changed = false;
  while (stored.length < count) {
    stored.push({ uuid: randomUUID(), bootOrder: "pxe" });
    changed = true;
  }
  stored = stored.map((m, i) => {
    if (m.macs && m.bmc) return m;
    changed = true;
    const { macs, bmc } = identityOf(i, m.uuid);
    return { ...m, macs, bmc };
  });
  if (changed) await saveMachines(file, stored);
  return stored;
}

export function snapshot(m: SimMachine, identity: MachineIdentity): StoredMachine {
  return {
    uuid: m.uuid,
    macs: identity.macs,
    bmc: identity.bmc,
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
    if (disk) (disk.partitions = d.partitions), (disk.wipes = d.wipes);
  }
  for (const [dev, fs] of Object.entries(s.filesystems ?? {})) m.filesystems.set(dev, { format: fs.format, label: fs.label, files: new Map(Object.entries(fs.files)) });
  for (const [dev, r] of Object.entries(s.raids ?? {})) m.raids.set(dev, r);
  for (const [vg, members] of Object.entries(s.volumeGroups ?? {})) m.volumeGroups.set(vg, members);
  for (const [dev, v] of Object.entries(s.volumes ?? {})) m.volumes.set(dev, v);
}

/**
 * Written whole through a temporary file, flushed to the disk before it
 * replaces the old one, and the directory entry flushed after: a crash (or
 * kill -9, or power loss) leaves the previous state or this one, never half
 * of one and never none.
 */
export async function saveMachines(file: string, machines: StoredMachine[]): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const out = await open(tmp, "w", 0o600);
  try {
    await out.writeFile(JSON.stringify({ version: 1, machines } satisfies StateFile));
    await out.sync();
  } finally {
    await out.close();
  }
  await rename(tmp, file);
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
