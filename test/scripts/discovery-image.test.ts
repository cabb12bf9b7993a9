import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { type CpioEntry, readCpio, writeCpio } from "../../scripts/discovery-image/cpio.js";
import { dependencyNames, isLibraryPackage, parsePrintUris } from "../../scripts/discovery-image/debs.js";
import { renderHammerLauncher, renderInit, renderUdhcpcScript } from "../../scripts/discovery-image/init.js";
import { dependsOf, modinfo, moduleName, planModules } from "../../scripts/discovery-image/kmod.js";
import { interpreterOf, parseLdd } from "../../scripts/discovery-image/ldd.js";
import { appletLinks, canonicalPath, ImageTree } from "../../scripts/discovery-image/tree.js";

const bytes = (s: string) => Buffer.from(s);

describe("newc cpio", () => {
  const entries: CpioEntry[] = [
    { path: "usr/bin/tool", type: "file", mode: 0o755, data: bytes("#!/bin/sh\n") },
    { path: "usr", type: "dir", mode: 0o755 },
    { path: "bin", type: "symlink", target: "usr/bin" },
    { path: "usr/bin", type: "dir", mode: 0o755 },
    { path: "dev/console", type: "char", mode: 0o600, major: 5, minor: 1 },
    { path: "dev", type: "dir", mode: 0o755 },
    { path: "usr-local", type: "file", mode: 0o644, data: bytes("odd") },
  ];

  it("is the same bytes whatever order the entries come in", () => {
    const a = writeCpio(entries, 1_700_000_000);
    const b = writeCpio([...entries].reverse(), 1_700_000_000);
    expect(Buffer.compare(a, b)).toBe(0);
    expect(Buffer.compare(a, writeCpio(entries, 1_700_000_001))).not.toBe(0);
  });

  it("puts each directory before what is in it, dates every entry alike and reads back", () => {
    const read = readCpio(writeCpio(entries, 1_700_000_000));
    expect(read.map((e) => e.path)).toEqual(["bin", "dev", "dev/console", "usr", "usr-local", "usr/bin", "usr/bin/tool"]);
    expect(new Set(read.map((e) => e.mtime))).toEqual(new Set([1_700_000_000]));
    const tool = read.find((e) => e.path === "usr/bin/tool")!;
    expect(tool.mode).toBe(0o100755);
    expect(tool.data.toString()).toBe("#!/bin/sh\n");
    expect(read.find((e) => e.path === "bin")!.data.toString()).toBe("usr/bin");
    expect(read.find((e) => e.path === "dev/console")!.mode).toBe(0o020600);
  });

  it("writes owner root and the device numbers into the header, and ends with the trailer", () => {
    const archive = writeCpio([{ path: "dev/console", type: "char", mode: 0o600, major: 5, minor: 1 }], 0);
    const field = (i: number) => archive.toString("ascii", 6 + i * 8, 14 + i * 8);
    expect(archive.toString("ascii", 0, 6)).toBe("070701");
    expect([field(2), field(3)]).toEqual(["00000000", "00000000"]);
    expect([field(9), field(10)]).toEqual(["00000005", "00000001"]);
    expect(archive.includes(bytes("TRAILER!!!\0"))).toBe(true);
    expect(archive.length % 4).toBe(0);
  });

  it("can be listed by cpio(1) when it is installed", () => {
    let listing: string;
    try {
      listing = execFileSync("cpio", ["-it", "--quiet"], { input: writeCpio(entries, 0), encoding: "utf8" });
    } catch {
      return;
    }
    expect(listing.trim().split("\n")).toEqual(["bin", "dev", "dev/console", "usr", "usr-local", "usr/bin", "usr/bin/tool"]);
  });

  it("refuses a path given twice and paths that are not clean and relative", () => {
    expect(() => writeCpio([...entries, { path: "usr", type: "dir", mode: 0o700 }], 0)).toThrow(/twice/);
    for (const path of ["/etc", "a/../b", "a//b", ""]) expect(() => writeCpio([{ path, type: "dir", mode: 0o755 }], 0)).toThrow(/clean relative/);
  });
});

describe("libraries from the loader's list mode", () => {
  it("keeps resolved libraries, drops the vDSO, reports what is missing", () => {
    const out = [
      "\tlinux-vdso.so.1 (0x00007ffd4b3f2000)",
      "\tlibstdc++.so.6 => /build/root/usr/lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f4878a00000)",
      "\tlibc.so.6 => /build/root/lib/x86_64-linux-gnu/libc.so.6 (0x00007f487881e000)",
      "\tlibsnmp.so.40 => not found",
      "\t/lib64/ld-linux-x86-64.so.2 (0x00007f4878e10000)",
    ].join("\n");
    expect(parseLdd(out)).toEqual({
      libraries: [
        { soname: "libstdc++.so.6", path: "/build/root/usr/lib/x86_64-linux-gnu/libstdc++.so.6" },
        { soname: "libc.so.6", path: "/build/root/lib/x86_64-linux-gnu/libc.so.6" },
      ],
      interpreter: "/lib64/ld-linux-x86-64.so.2",
      missing: ["libsnmp.so.40"],
      static: false,
    });
  });

  it("says so for a static program", () => {
    expect(parseLdd("\tnot a dynamic executable\n").static).toBe(true);
    expect(parseLdd("\tstatically linked\n")).toMatchObject({ static: true, libraries: [] });
  });

  it("reads the program interpreter from an ELF program header, none from a static one or a script", () => {
    expect(interpreterOf(elfWithInterpreter("/lib64/ld-linux-x86-64.so.2"))).toBe("/lib64/ld-linux-x86-64.so.2");
    expect(interpreterOf(elfWithInterpreter(undefined))).toBeUndefined();
    expect(interpreterOf(bytes("#!/bin/sh\necho hello, this is not ELF at all, but long enough to be read as a header\n"))).toBeUndefined();
  });
});

describe("kernel modules", () => {
  it("names modules as the kernel does", () => {
    expect(moduleName("kernel/drivers/md/md-mod.ko")).toBe("md_mod");
    expect(moduleName("kernel/fs/nls/nls_iso8859-1.ko.xz")).toBe("nls_iso8859_1");
  });

  it("reads depends= from a module's .modinfo section", () => {
    const info = modinfo(elfWithModinfo(["license=GPL", "depends=virtio_ring,net-failover", "alias=virtio:d00000001v*", "alias=pci:x"]));
    expect(dependsOf(info)).toEqual(["virtio_ring", "net_failover"]);
    expect(info.get("alias")).toEqual(["virtio:d00000001v*", "pci:x"]);
    expect(dependsOf(modinfo(elfWithModinfo(["depends="])))).toEqual([]);
  });

  const paths = new Map([
    ["virtio_net", "kernel/drivers/net/virtio_net.ko"],
    ["net_failover", "kernel/drivers/net/net_failover.ko"],
    ["failover", "kernel/net/core/failover.ko"],
    ["ext4", "kernel/fs/ext4/ext4.ko"],
    ["jbd2", "kernel/fs/jbd2/jbd2.ko"],
    ["mbcache", "kernel/fs/mbcache.ko"],
    ["crc16", "kernel/lib/crc16.ko"],
  ]);
  const deps: Record<string, string[]> = { virtio_net: ["net_failover", "virtio_ring"], net_failover: ["failover"], ext4: ["mbcache", "jbd2", "crc16"], jbd2: [], mbcache: [], crc16: [], failover: [] };

  it("loads every module after what it depends on, skipping what is built in", () => {
    const plan = planModules(["virtio-net", "ext4", "virtio_ring"], paths, new Set(["virtio_ring"]), (m) => deps[m] ?? []);
    expect(plan.builtin).toEqual(["virtio_ring"]);
    expect(plan.load).toEqual([
      "kernel/net/core/failover.ko",
      "kernel/drivers/net/net_failover.ko",
      "kernel/drivers/net/virtio_net.ko",
      "kernel/lib/crc16.ko",
      "kernel/fs/jbd2/jbd2.ko",
      "kernel/fs/mbcache.ko",
      "kernel/fs/ext4/ext4.ko",
    ]);
    for (const [i, m] of plan.load.entries()) for (const d of deps[moduleName(m)] ?? []) if (paths.has(d)) expect(plan.load.indexOf(paths.get(d)!)).toBeLessThan(i);
  });

  it("fails on a module that is nowhere, naming who needs it, and on a circle", () => {
    expect(() => planModules(["virtio_net"], paths, new Set(), (m) => deps[m] ?? [])).toThrow(/virtio_ring \(needed by virtio_net\)/);
    expect(() => planModules(["failover"], paths, new Set(), (m) => (m === "failover" ? ["net_failover"] : ["failover"]))).toThrow(/circle/);
  });
});

describe("packages", () => {
  it("reads package names from a Depends field", () => {
    expect(dependencyNames("libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, libpython3.11:any, zlib1g (>= 1:1.1.4)")).toEqual(["libc6", "debconf", "libpython3.11", "zlib1g"]);
    expect(dependencyNames("")).toEqual([]);
    expect(["libc6", "zlib1g", "udev", "debconf"].filter(isLibraryPackage)).toEqual(["libc6", "zlib1g"]);
  });

  it("reads file names and hashes from apt-get download --print-uris", () => {
    const out = `'http://mirror/pool/main/b/busybox/busybox-static_1%3a1.35.0-4_amd64.deb' busybox-static_1%3a1.35.0-4_amd64.deb 928188 SHA256:${"ab".repeat(32)}\n`;
    expect(parsePrintUris(out)).toEqual([{ file: "busybox-static_1%3a1.35.0-4_amd64.deb", sha256: "ab".repeat(32) }]);
  });
});

describe("the image tree", () => {
  it("folds /bin, /sbin, /lib and /lib64 into /usr", () => {
    expect(canonicalPath("./sbin/mdadm")).toBe("usr/sbin/mdadm");
    expect(canonicalPath("/lib64/ld-linux-x86-64.so.2")).toBe("usr/lib64/ld-linux-x86-64.so.2");
    expect(canonicalPath("usr/bin/lspci")).toBe("usr/bin/lspci");
    expect(canonicalPath("library/x")).toBe("library/x");
  });

  it("adds parent directories, accepts the same file twice and refuses a different one", () => {
    const tree = new ImageTree();
    tree.file("lib/x86_64-linux-gnu/libc.so.6", bytes("libc"), 0o644);
    tree.file("/lib/x86_64-linux-gnu/libc.so.6", bytes("libc"), 0o644);
    expect(() => tree.file("usr/lib/x86_64-linux-gnu/libc.so.6", bytes("other"), 0o644)).toThrow(/twice, differently/);
    const paths = tree.list().map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(["usr", "usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu/libc.so.6", "bin", "lib64"]));
  });

  it("links busybox applets except where a real program has the name", () => {
    const links = appletLinks(["bin/sh", "sbin/ip", "bin/mount", "usr/bin/wc", "linuxrc", "bin/busybox"], new Set(["ip", "mount"]));
    expect(links).toEqual([
      { path: "usr/bin/sh", target: "/usr/bin/busybox" },
      { path: "usr/bin/wc", target: "/usr/bin/busybox" },
    ]);
  });
});

describe("the init", () => {
  const init = renderInit({ kernelVersion: "6.1.0-57-amd64", modules: ["kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko"], hammer: "/opt/metal/metal-hammer.js" });

  it("is valid sh, as is the DHCP script", () => {
    for (const script of [init, renderUdhcpcScript()]) execFileSync("sh", ["-n"], { input: script });
  });

  it("mounts, loads modules in order, brings up links, starts lldpd, runs the hammer, then reboots", () => {
    const at = (s: string) => {
      const i = init.indexOf(s);
      expect(i, s).toBeGreaterThan(-1);
      return i;
    };
    const steps = [
      "mount -t proc",
      "mount -t devtmpfs",
      "'kernel/lib/crc16.ko' 'kernel/fs/ext4/ext4.ko'",
      "insmod /lib/modules/6.1.0-57-amd64/",
      "udhcpc -i",
      "lldpd",
      "node /opt/metal/metal-hammer.js",
      "reboot -f",
    ];
    const positions = steps.map(at);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(init.startsWith("#!/bin/sh\n")).toBe(true);
  });

  it("refuses a kernel version that would be sh syntax", () => {
    expect(() => renderInit({ kernelVersion: "6.1; reboot", modules: [], hammer: "/x" })).toThrow(/kernel version/);
  });

  it("launches the bundle beside the launcher", () => {
    expect(renderHammerLauncher("metal-hammer.mjs")).toContain('import { runMetalHammer } from "./metal-hammer.mjs"');
  });
});

/** A 64-byte ELF64 header plus program headers: PT_LOAD, and PT_INTERP when `interp` is given. */
function elfWithInterpreter(interp: string | undefined): Buffer {
  const phnum = interp ? 2 : 1;
  const dataAt = 64 + 56 * phnum;
  const buf = Buffer.alloc(dataAt + 64);
  elfHeader(buf);
  buf.writeBigUInt64LE(64n, 0x20);
  buf.writeUInt16LE(56, 0x36);
  buf.writeUInt16LE(phnum, 0x38);
  buf.writeUInt32LE(1, 64);
  if (interp) {
    buf.writeUInt32LE(3, 64 + 56);
    buf.writeBigUInt64LE(BigInt(dataAt), 64 + 56 + 8);
    buf.writeBigUInt64LE(BigInt(interp.length + 1), 64 + 56 + 32);
    buf.write(`${interp}\0`, dataAt, "latin1");
  }
  return buf;
}

/** An ELF64 relocatable object with a section-name table and a .modinfo section holding `strings`. */
function elfWithModinfo(strings: string[]): Buffer {
  const names = Buffer.from("\0.shstrtab\0.modinfo\0");
  const info = Buffer.from(`${strings.join("\0")}\0`);
  const namesAt = 64;
  const infoAt = namesAt + names.length;
  const shoff = infoAt + info.length + ((8 - ((infoAt + info.length) % 8)) % 8);
  const buf = Buffer.alloc(shoff + 3 * 64);
  elfHeader(buf);
  names.copy(buf, namesAt);
  info.copy(buf, infoAt);
  buf.writeBigUInt64LE(BigInt(shoff), 0x28);
  buf.writeUInt16LE(64, 0x3a);
  buf.writeUInt16LE(3, 0x3c);
  buf.writeUInt16LE(1, 0x3e);
  const section = (i: number, name: number, offset: number, size: number) => {
    const at = shoff + i * 64;
    buf.writeUInt32LE(name, at);
    buf.writeBigUInt64LE(BigInt(offset), at + 0x18);
    buf.writeBigUInt64LE(BigInt(size), at + 0x20);
  };
  section(1, 1, namesAt, names.length);
  section(2, 11, infoAt, info.length);
  return buf;
}

function elfHeader(buf: Buffer): void {
  buf.writeUInt32BE(0x7f454c46, 0);
  buf[4] = 2;
  buf[5] = 1;
  buf[6] = 1;
}
