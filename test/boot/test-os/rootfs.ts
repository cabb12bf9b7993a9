import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * The test OS's root filesystem is the discovery initramfs minus what only
 * discovery needs. Its entries are written to a staging directory, which
 * GNU tar then archives.
 */

/** An entry as scripts/discovery-image/cpio.ts's readCpio gives it. */
export interface ArchiveEntry {
  path: string;
  mode: number;
  data: Buffer;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/**
 * Left out: metal-hammer (its bundle and launcher), Node, and the discovery
 * /init (the installed system has its own /sbin/init). Node's libstdc++
 * stays: other programs may use it, and it is 2 MiB. Device nodes are left
 * out too: the installed system mounts devtmpfs, and creating them would
 * need root to build.
 */
export function keepInRootfs(e: ArchiveEntry): boolean {
  if (e.path === "init" || e.path === "usr/bin/node") return false;
  if (e.path === "opt/metal" || e.path.startsWith("opt/metal/")) return false;
  const type = e.mode & S_IFMT;
  return type === S_IFDIR || type === S_IFREG || type === S_IFLNK;
}

/** Writes the entries into `root` (made empty first) with their modes; parents of a path are created as 0755 if the archive lacks them. */
export function stageEntries(root: string, entries: readonly ArchiveEntry[]): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true, mode: 0o755 });
  chmodSync(root, 0o755);
  // Directories first, parents before children: a file is never written through a link a directory should be.
  const sorted = [...entries].sort((a, b) => a.path.split("/").length - b.path.split("/").length);
  for (const e of sorted) {
    if (e.path.startsWith("/") || e.path.split("/").some((p) => p === "" || p === "." || p === "..")) throw new Error(`"${e.path}" is not a clean relative path`);
    const at = join(root, e.path);
    mkdirSync(dirname(at), { recursive: true, mode: 0o755 });
    switch (e.mode & S_IFMT) {
      case S_IFDIR:
        mkdirSync(at, { recursive: true });
        chmodSync(at, e.mode & 0o7777);
        break;
      case S_IFREG:
        writeFileSync(at, e.data);
        // Explicitly: writeFileSync's mode is filtered by the umask.
        chmodSync(at, e.mode & 0o7777);
        break;
      case S_IFLNK:
        symlinkSync(e.data.toString("utf8"), at);
        break;
      default:
        throw new Error(`${e.path}: entry type ${(e.mode & S_IFMT).toString(8)} cannot be staged`);
    }
  }
}

/**
 * Writes a file of the staging root at `path` (relative), replacing what is
 * there: a link in particular is removed, not written through (/sbin/init
 * is a link to busybox in the discovery image).
 */
export function putFile(root: string, path: string, data: Uint8Array | string, mode: number): void {
  const at = join(root, path);
  mkdirSync(dirname(at), { recursive: true, mode: 0o755 });
  rmSync(at, { force: true });
  writeFileSync(at, data);
  chmodSync(at, mode);
}
