import type { CpioEntry } from "./cpio.js";

/**
 * The image's file tree before it becomes a cpio archive. The image has a
 * merged /usr, as Debian systems do: packages still ship some programs and
 * libraries under /bin, /sbin, /lib and /lib64, and every such path is
 * stored under /usr, with the four top-level names as links to it.
 */
export const MERGED_DIRS = ["bin", "sbin", "lib", "lib64"] as const;

/** A path inside the image, relative to its root, with /bin, /sbin, /lib and /lib64 folded into /usr. */
export function canonicalPath(path: string): string {
  const rel = path.replace(/^\.?\/+/, "").replace(/\/+$/, "");
  const top = rel.split("/")[0]!;
  return (MERGED_DIRS as readonly string[]).includes(top) ? `usr/${rel}` : rel;
}

export class ImageTree {
  private readonly entries = new Map<string, CpioEntry>();

  constructor() {
    for (const d of MERGED_DIRS) this.entries.set(d, { path: d, type: "symlink", target: `usr/${d}` });
  }

  has(path: string): boolean {
    return this.entries.has(canonicalPath(path));
  }

  dir(path: string, mode = 0o755): void {
    this.put({ path: canonicalPath(path), type: "dir", mode });
  }

  file(path: string, data: Uint8Array, mode: number): void {
    this.put({ path: canonicalPath(path), type: "file", mode, data });
  }

  symlink(path: string, target: string): void {
    this.put({ path: canonicalPath(path), type: "symlink", target });
  }

  char(path: string, mode: number, major: number, minor: number): void {
    this.put({ path: canonicalPath(path), type: "char", mode, major, minor });
  }

  /**
   * A path added twice must be the same thing twice (two programs needing one
   * library); anything else is a conflict the build should not settle quietly.
   */
  private put(e: CpioEntry): void {
    const old = this.entries.get(e.path);
    if (old && !sameEntry(old, e)) throw new Error(`${e.path} is added twice, differently`);
    this.entries.set(e.path, e);
  }

  /** Every entry, with each parent directory that was not added explicitly (mode 0755). */
  list(): CpioEntry[] {
    const all = new Map(this.entries);
    for (const path of this.entries.keys()) {
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join("/");
        if (!all.has(dir)) all.set(dir, { path: dir, type: "dir", mode: 0o755 });
      }
    }
    return [...all.values()];
  }
}

function sameEntry(a: CpioEntry, b: CpioEntry): boolean {
  if (a.type !== b.type) return false;
  if (a.type === "symlink" && b.type === "symlink") return a.target === b.target;
  if (a.type === "file" && b.type === "file") return a.mode === b.mode && Buffer.compare(Buffer.from(a.data), Buffer.from(b.data)) === 0;
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Busybox's applets as links to it, except where a real program of the same
 * name is in the image (anywhere on PATH: busybox's /sbin/ip would shadow
 * iproute2's /bin/ip, whose JSON output the hammer reads). `applets` is
 * `busybox --list-full` (bin/sh, sbin/ifconfig, ...).
 */
export function appletLinks(applets: readonly string[], realCommands: ReadonlySet<string>): { path: string; target: string }[] {
  const links: { path: string; target: string }[] = [];
  for (const applet of applets) {
    const path = canonicalPath(applet.trim());
    const name = path.split("/").at(-1)!;
    if (path === "" || !path.includes("/") || name === "busybox" || realCommands.has(name)) continue;
    links.push({ path, target: "/usr/bin/busybox" });
  }
  return links;
}
