/**
 * Kernel modules for the initramfs: which files, in which order to load them.
 * Debian's kernel package carries no modules.dep (depmod makes it on
 * install), so the dependencies are read from each module's own .modinfo
 * section ("depends=a,b"), which is what depmod reads too.
 */

/** A module's name as the kernel knows it: file name without .ko, dashes as underscores. */
export const moduleName = (pathOrName: string): string =>
  pathOrName
    .replace(/^.*\//, "")
    .replace(/\.ko(\.(xz|zst|gz))?$/, "")
    .replaceAll("-", "_");

/** The strings of an ELF64 little-endian object's .modinfo section ("key=value"). */
export function modinfo(elf: Uint8Array): Map<string, string[]> {
  const buf = Buffer.from(elf.buffer, elf.byteOffset, elf.length);
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error("not a 64-bit little-endian ELF object");
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return { name: buf.readUInt32LE(at), offset: Number(buf.readBigUInt64LE(at + 0x18)), size: Number(buf.readBigUInt64LE(at + 0x20)) };
  };
  const names = section(shstrndx);
  const nameOf = (off: number) => {
    const start = names.offset + off;
    return buf.toString("latin1", start, buf.indexOf(0, start));
  };
  const info = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (nameOf(s.name) !== ".modinfo") continue;
    for (const entry of buf.toString("latin1", s.offset, s.offset + s.size).split("\0")) {
      const eq = entry.indexOf("=");
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      info.set(key, [...(info.get(key) ?? []), entry.slice(eq + 1)]);
    }
  }
  return info;
}

/** The module names a module's .modinfo says it depends on. */
export const dependsOf = (info: Map<string, string[]>): string[] =>
  (info.get("depends") ?? [])
    .flatMap((d) => d.split(","))
    .filter(Boolean)
    .map(moduleName);

export interface ModulePlan {
  /** Module files (relative to /lib/modules/<version>) in the order to load them: each after what it depends on. */
  load: string[];
  /** Asked for, but built into the kernel: nothing to load. */
  builtin: string[];
}

/**
 * The load order of `wanted` and everything they depend on. `paths` maps a
 * module name to its file, `builtin` holds the names built into the kernel,
 * `depends` gives a module's direct dependencies. Depth first, wanted
 * modules in the order given and dependencies sorted, so the order is the
 * same on every build. Throws on a module that is neither a file nor built in.
 */
export function planModules(wanted: readonly string[], paths: ReadonlyMap<string, string>, builtin: ReadonlySet<string>, depends: (name: string) => string[]): ModulePlan {
  const load: string[] = [];
  const inBuilt: string[] = [];
  const done = new Set<string>();
  const visit = (name: string, chain: string[]) => {
    if (done.has(name)) return;
    if (chain.includes(name)) throw new Error(`kernel modules depend on each other in a circle: ${[...chain, name].join(" -> ")}`);
    if (builtin.has(name)) {
      done.add(name);
      if (wanted.map(moduleName).includes(name)) inBuilt.push(name);
      return;
    }
    const path = paths.get(name);
    if (path === undefined) throw new Error(`kernel module ${name}${chain.length > 0 ? ` (needed by ${chain.at(-1)})` : ""} is neither in the kernel package nor built in`);
    for (const dep of [...depends(name)].sort()) visit(dep, [...chain, name]);
    done.add(name);
    load.push(path);
  };
  for (const w of wanted) visit(moduleName(w), []);
  return { load, builtin: inBuilt };
}
