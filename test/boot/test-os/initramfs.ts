import { gzipSync } from "node:zlib";
import { type CpioEntry, writeCpio } from "../../../scripts/discovery-image/cpio.js";
import { dependsOf, modinfo, moduleName } from "../../../scripts/discovery-image/kmod.js";
import { renderInitramfsInit } from "./scripts.js";

/**
 * The test OS's own initramfs: static busybox, the few kernel modules that
 * reach and mount the root disk, and an /init that switches to it. Written
 * with the discovery image's cpio writer, so the same inputs give the same
 * bytes.
 */

/**
 * What the root disk needs: the virtio PCI transport and block driver, and
 * ext4. crc32c_generic is named because ext4 and jbd2 ask the crypto API
 * for crc32c at mount time (no depends= names it, and there is no modprobe
 * to load it on demand).
 */
export const ROOT_DISK_MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"] as const;

/** The busybox applets /init runs, each a link to /bin/busybox. */
const APPLETS = ["sh", "mount", "umount", "insmod", "findfs", "switch_root", "sleep", "cat", "grep", "ls", "tr", "mkdir", "poweroff", "setsid", "cttyhack"];

/**
 * Of `loadOrder` (module files relative to /lib/modules/<version>, each
 * after what it depends on: the discovery image's order), those `wanted`
 * needs, in that order. `depends` gives a module file's direct dependencies
 * by name; a dependency not in `loadOrder` is an error (it would be missing
 * at boot).
 */
export function selectModules(loadOrder: readonly string[], wanted: readonly string[], depends: (file: string) => string[]): string[] {
  const byName = new Map(loadOrder.map((f) => [moduleName(f), f] as const));
  const needed = new Set<string>();
  const visit = (name: string, by: string) => {
    if (needed.has(name)) return;
    const file = byName.get(name);
    if (file === undefined) throw new Error(`kernel module ${name} (needed by ${by}) is not in the discovery image`);
    needed.add(name);
    for (const dep of depends(file)) visit(dep, name);
  };
  for (const w of wanted) visit(moduleName(w), "the root disk");
  return loadOrder.filter((f) => needed.has(moduleName(f)));
}

export interface InitramfsInput {
  kernelVersion: string;
  /** The discovery image's modules in load order, relative to /lib/modules/<version>. */
  loadOrder: readonly string[];
  /** A module file's bytes, by its path relative to /lib/modules/<version>. */
  moduleFile: (path: string) => Uint8Array;
  busybox: Uint8Array;
  /** Every entry's mtime (seconds). */
  epoch: number;
}

/** The gzip-compressed newc archive, and the modules it loads (in order). */
export function buildInitramfs(input: InitramfsInput): { image: Buffer; modules: string[] } {
  const modules = selectModules(input.loadOrder, ROOT_DISK_MODULES, (f) => dependsOf(modinfo(input.moduleFile(f))));
  const entries: CpioEntry[] = [];
  const dirs = new Set<string>(["bin", "dev", "proc", "sys", "newroot"]);
  const moduleDir = `lib/modules/${input.kernelVersion}`;
  for (const m of modules) {
    const path = `${moduleDir}/${m}`;
    for (let at = path.indexOf("/"); at > 0; at = path.indexOf("/", at + 1)) dirs.add(path.slice(0, at));
    entries.push({ path, type: "file", mode: 0o644, data: input.moduleFile(m) });
  }
  for (const d of dirs) entries.push({ path: d, type: "dir", mode: 0o755 });
  entries.push({ path: "bin/busybox", type: "file", mode: 0o755, data: input.busybox });
  for (const a of APPLETS) entries.push({ path: `bin/${a}`, type: "symlink", target: "busybox" });
  // The kernel opens /dev/console for /init before anything is mounted.
  entries.push({ path: "dev/console", type: "char", mode: 0o600, major: 5, minor: 1 });
  entries.push({ path: "init", type: "file", mode: 0o755, data: Buffer.from(renderInitramfsInit({ kernelVersion: input.kernelVersion, modules })) });
  // zlib's gzip header carries no time or name: the same archive gives the same bytes.
  return { image: gzipSync(writeCpio(entries, input.epoch), { level: 9 }), modules };
}
