import { open } from "node:fs/promises";
import type { CommandRunner } from "./runner.js";

/** How an image tarball is compressed, told by its first bytes (the URL's suffix may lie). */
export type Compression = "lz4" | "zstd" | "gzip" | "none";

/** The first bytes of each format: an lz4 frame, a zstd frame, gzip. Anything else is handed to tar as it is. */
export function compressionOf(head: Uint8Array): Compression {
  const starts = (...magic: number[]) => magic.every((b, i) => head[i] === b);
  if (starts(0x04, 0x22, 0x4d, 0x18)) return "lz4";
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return "zstd";
  if (starts(0x1f, 0x8b)) return "gzip";
  return "none";
}

export async function compressionOfFile(file: string): Promise<Compression> {
  const fh = await open(file, "r");
  try {
    const head = new Uint8Array(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return compressionOf(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** Unpacking a multi-gigabyte image onto slow disks takes a while; an hour means something hangs. */
export const UNPACK_TIMEOUT_MS = 60 * 60_000;

/** GNU tar before 1.35 has no --lz4; as a compress program tar runs `lz4 -d` itself. */
const TAR_FILTER: Record<Compression, string[]> = { lz4: ["--use-compress-program=lz4"], zstd: ["--zstd"], gzip: ["--gzip"], none: [] };

/**
 * tar's arguments to unpack `file` into `target`: owners by number (the
 * discovery image's /etc/passwd is not the image's), permissions and
 * extended attributes (file capabilities, SELinux labels) kept.
 */
export function tarArgv(file: string, target: string, compression: Compression): string[] {
  return ["tar", "--extract", ...TAR_FILTER[compression], "--file", file, "--directory", target, "--numeric-owner", "--preserve-permissions", "--xattrs", "--xattrs-include=*"];
}

export async function unpackTarball(runner: CommandRunner, file: string, target: string): Promise<void> {
  const compression = await compressionOfFile(file);
  if (compression === "lz4" && !runner.has("lz4")) throw new Error("the image is lz4-compressed and lz4 is not installed");
  await runner.run(tarArgv(file, target, compression), { timeoutMs: UNPACK_TIMEOUT_MS });
}
