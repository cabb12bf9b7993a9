/**
 * What the dynamic loader's list mode (`ldd`, or `ld.so --list`) says a
 * program needs: each library's soname and the file it resolved to, the
 * program interpreter, and the sonames it found nowhere.
 */
export interface LddResult {
  libraries: { soname: string; path: string }[];
  /** The program interpreter as the program names it (/lib64/ld-linux-x86-64.so.2). */
  interpreter?: string;
  missing: string[];
  /** A static program: nothing to collect. */
  static: boolean;
}

export function parseLdd(output: string): LddResult {
  const result: LddResult = { libraries: [], missing: [], static: false };
  for (const raw of output.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    if (/statically linked|not a dynamic executable/.test(line)) {
      result.static = true;
      continue;
    }
    const arrow = /^(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$/.exec(line);
    if (arrow) {
      const [, soname, where] = arrow as unknown as [string, string, string];
      if (where === "not found") result.missing.push(soname);
      // The vDSO is the kernel's, never a file (some loaders print it with an empty arrow).
      else if (where.startsWith("/")) result.libraries.push({ soname, path: where });
      continue;
    }
    const bare = /^(\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (bare?.[1]?.startsWith("/")) result.interpreter = bare[1];
  }
  return result;
}

/**
 * The program interpreter an ELF program names (PT_INTERP: the dynamic
 * loader the kernel starts it with), or undefined for a static program or
 * anything not ELF. Read from the file, because the loader's list mode run
 * directly names itself rather than what the program asks for.
 */
export function interpreterOf(elf: Uint8Array): string | undefined {
  const buf = Buffer.from(elf.buffer, elf.byteOffset, elf.length);
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) return undefined;
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const PT_INTERP = 3;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (buf.readUInt32LE(at) !== PT_INTERP) continue;
    const offset = Number(buf.readBigUInt64LE(at + 8));
    const size = Number(buf.readBigUInt64LE(at + 32));
    return buf.toString("latin1", offset, offset + size).replace(/\0+$/, "");
  }
  return undefined;
}
