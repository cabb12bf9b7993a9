import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { PlannedFilesystem } from "../hardware.js";
import type { CommandRunner } from "./runner.js";

/**
 * Mounting the new installation under one target directory: the root
 * filesystem first, then the others below it in path order (/var before
 * /var/lib). Swap, tmpfs and "none" are not mounted: tmpfs is the installed
 * OS's business (its fstab), and what the image holds under such a path
 * belongs on the filesystem below it.
 */

/** The filesystems to mount, parents first. */
export function mountOrder(filesystems: PlannedFilesystem[]): PlannedFilesystem[] {
  const disk = filesystems.filter((f) => f.path.startsWith("/") && f.format !== "swap" && f.format !== "tmpfs" && f.format !== "none");
  if (!disk.some((f) => f.path === "/")) throw new Error("no root filesystem to mount");
  // Sorting by depth, then by name, puts every mount point after the one it lives on.
  return disk.sort((a, b) => depth(a.path) - depth(b.path) || a.path.localeCompare(b.path));
}

function depth(path: string): number {
  return path === "/" ? 0 : path.split("/").length - 1;
}

/** Where a mount point of the installation lives under the target; refuses paths that climb out of it. */
export function underTarget(target: string, path: string): string {
  if (!path.startsWith("/") || path.split("/").includes("..")) throw new Error(`mount point ${path} is not an absolute path inside the installation`);
  return path === "/" ? target : join(target, path);
}

/** Mounts them all; returns the mount points, in the order to unmount them (children first). */
export async function mountAll(runner: CommandRunner, target: string, filesystems: PlannedFilesystem[]): Promise<string[]> {
  const mounted: string[] = [];
  try {
    for (const fs of mountOrder(filesystems)) {
      const at = underTarget(target, fs.path);
      // Created on the parent filesystem just mounted (the target itself on the host).
      await mkdir(at, { recursive: true });
      await runner.run(["mount", fs.device, at], { timeoutMs: 120_000 });
      mounted.unshift(at);
    }
  } catch (err) {
    await unmountAll(runner, mounted);
    throw err;
  }
  return mounted;
}

/** Unmounts children first; a mount point that is already gone is no error. */
export async function unmountAll(runner: CommandRunner, mountPoints: string[]): Promise<void> {
  for (const at of mountPoints) await runner.run(["umount", at], { allowFailure: true, timeoutMs: 120_000 });
}

/**
 * The installed system's /etc/fstab, from the layout: the filesystems by
 * device as the layout names them, swap, tmpfs with its options. The
 * install step may rewrite it (by UUID, say); the layout's mount options
 * only take effect here, never while installing.
 */
export function fstab(filesystems: PlannedFilesystem[]): string {
  const lines = ["# written by metal-hammer from the machine's filesystem layout"];
  for (const raw of filesystems) {
    const fs = { ...raw, device: fstabField(raw.device), path: fstabField(raw.path) };
    const opts = fs.mountOptions.length > 0 ? fstabField(fs.mountOptions.join(",")) : "defaults";
    if (fs.format === "swap") lines.push(`${fs.device} none swap ${fs.mountOptions.length > 0 ? opts : "sw"} 0 0`);
    else if (fs.format === "tmpfs" && fs.path) lines.push(`tmpfs ${fs.path} tmpfs ${opts} 0 0`);
    else if (fs.format !== "none" && fs.path) lines.push(`${fs.device} ${fs.path} ${fs.format} ${opts} 0 ${fs.path === "/" ? 1 : 2}`);
  }
  return `${lines.join("\n")}\n`;
}

/** fstab separates fields by whitespace; whitespace inside a field is written as an octal escape (\040 for a space). */
function fstabField(s: string): string {
  return s.replace(/[\s\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}
