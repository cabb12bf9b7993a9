/**
 * A newc ("070701") cpio archive, the format the kernel unpacks an initramfs
 * from, written here rather than by cpio(1) so that the bytes depend on the
 * entries alone: entries in byte order of their paths (a directory before
 * what is in it), one mtime for all, owner root, inode numbers counted from 1.
 */

export type CpioEntry =
  | { path: string; type: "dir"; mode: number }
  | { path: string; type: "file"; mode: number; data: Uint8Array }
  | { path: string; type: "symlink"; target: string }
  | { path: string; type: "char"; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const hex8 = (n: number): string => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio: ${n} does not fit a newc header field`);
  return n.toString(16).padStart(8, "0");
};

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

/** Paths compared as bytes (not by locale): the order is the same on every machine. */
export const byPath = (a: { path: string }, b: { path: string }): number => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path));

function header(ino: number, mode: number, nlink: number, mtime: number, size: number, rdev: [number, number], nameSize: number): string {
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  return ["070701", hex8(ino), hex8(mode), hex8(0), hex8(0), hex8(nlink), hex8(mtime), hex8(size), hex8(0), hex8(0), hex8(rdev[0]), hex8(rdev[1]), hex8(nameSize), hex8(0)].join("");
}

function record(ino: number, mode: number, nlink: number, mtime: number, name: string, data: Uint8Array, rdev: [number, number] = [0, 0]): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`);
  const head = Buffer.from(header(ino, mode, nlink, mtime, data.length, rdev, nameBytes.length), "ascii");
  return [head, nameBytes, Buffer.alloc(pad4(head.length + nameBytes.length)), Buffer.from(data.buffer, data.byteOffset, data.length), Buffer.alloc(pad4(data.length))];
}

/** Checks a path as it goes into the archive: relative, no empty, "." or ".." parts. */
function checkPath(path: string): void {
  if (path === "" || path.startsWith("/") || path.split("/").some((p) => p === "" || p === "." || p === "..")) throw new Error(`cpio: "${path}" is not a clean relative path`);
}

/** The archive of `entries` (sorted here; a path given twice is an error), every entry dated `mtime` (seconds). */
export function writeCpio(entries: readonly CpioEntry[], mtime: number): Buffer {
  const sorted = [...entries].sort(byPath);
  const parts: Buffer[] = [];
  let ino = 0;
  for (const [i, e] of sorted.entries()) {
    checkPath(e.path);
    if (i > 0 && sorted[i - 1]!.path === e.path) throw new Error(`cpio: ${e.path} is in the archive twice`);
    ino += 1;
    switch (e.type) {
      case "dir":
        parts.push(...record(ino, S_IFDIR | (e.mode & 0o7777), 2, mtime, e.path, new Uint8Array()));
        break;
      case "file":
        parts.push(...record(ino, S_IFREG | (e.mode & 0o7777), 1, mtime, e.path, e.data));
        break;
      case "symlink":
        parts.push(...record(ino, S_IFLNK | 0o777, 1, mtime, e.path, Buffer.from(e.target)));
        break;
      case "char":
        parts.push(...record(ino, S_IFCHR | (e.mode & 0o7777), 1, mtime, e.path, new Uint8Array(), [e.major, e.minor]));
        break;
    }
  }
  parts.push(...record(0, 0, 1, 0, "TRAILER!!!", new Uint8Array()));
  return Buffer.concat(parts);
}

/** The entries of a newc archive (for tests and for checking a built image): path, mode, size. */
export function readCpio(archive: Uint8Array): { path: string; mode: number; mtime: number; data: Buffer }[] {
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.length);
  const out: { path: string; mode: number; mtime: number; data: Buffer }[] = [];
  let at = 0;
  for (;;) {
    if (buf.toString("ascii", at, at + 6) !== "070701") throw new Error(`cpio: no newc header at offset ${at}`);
    const field = (i: number) => Number.parseInt(buf.toString("ascii", at + 6 + i * 8, at + 14 + i * 8), 16);
    const [mode, mtime, size, nameSize] = [field(1), field(5), field(6), field(11)];
    const nameAt = at + 110;
    const path = buf.toString("utf8", nameAt, nameAt + nameSize - 1);
    const dataAt = nameAt + nameSize + pad4(110 + nameSize);
    if (path === "TRAILER!!!") return out;
    out.push({ path, mode, mtime, data: buf.subarray(dataAt, dataAt + size) });
    at = dataAt + size + pad4(size);
  }
}
