/**
 * Builds the discovery image pixie boots free machines into: Debian's
 * kernel, and an initramfs with busybox, the tools metal-hammer's Linux
 * adapter runs (from Debian packages, with every shared library they need),
 * Node and the hammer's bundle. `npm run build:discovery-image`; writes
 * dist/discovery-image/{vmlinuz,initrd.img,manifest.json}. The same
 * package versions, Node binary, sources and SOURCE_DATE_EPOCH give the same
 * bytes: see docs/discovery-image.md.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, posix, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { writeCpio } from "./cpio.js";
import { type Deb, dependencyNames, download, downloadWithLibraries, extract, field } from "./debs.js";
import { GROUP, LVM_CONF, PASSWD, renderHammerLauncher, renderInit, renderUdhcpcScript } from "./init.js";
import { dependsOf, modinfo, moduleName, planModules } from "./kmod.js";
import { interpreterOf, parseLdd } from "./ldd.js";
import { HAMMER_DIR, KERNEL_PACKAGE, MODULES, PACKAGES } from "./spec.js";
import { appletLinks, ImageTree } from "./tree.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const outDir = join(repo, "dist", "discovery-image");
const work = join(repo, "dist", ".discovery-image-work");
const debDir = join(work, "debs");
const staging = join(work, "root");

const started = Date.now();
const step = (what: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

/**
 * zstd's level for the initramfs: 9 compresses in seconds; 19 saves about a
 * tenth of the size and takes minutes on two cores. Either decompresses as fast.
 */
function zstdLevel(): number {
  const env = process.env.DISCOVERY_IMAGE_ZSTD_LEVEL ?? "9";
  const level = Number(env);
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new Error(`DISCOVERY_IMAGE_ZSTD_LEVEL must be 1 to 19, not "${env}"`);
  return level;
}

/** Every file's date in the archive: SOURCE_DATE_EPOCH, else the commit the sources are at. */
function sourceDateEpoch(): number {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env !== undefined && env !== "") {
    if (!/^\d+$/.test(env)) throw new Error(`SOURCE_DATE_EPOCH must be seconds since 1970, not "${env}"`);
    return Number(env);
  }
  return Number(execFileSync("git", ["log", "-1", "--format=%ct"], { cwd: repo, encoding: "utf8" }).trim());
}

function walk(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name), base) : [relative(base, join(dir, e.name))]));
}

async function main(): Promise<void> {
  const epoch = sourceDateEpoch();
  const level = zstdLevel();
  mkdirSync(debDir, { recursive: true });
  mkdirSync(outDir, { recursive: true });

  step("downloading the packages and the libraries they depend on");
  const debs = downloadWithLibraries(debDir, Object.keys(PACKAGES));
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  for (const deb of debs) extract(deb, staging);
  step(`${debs.length} packages unpacked`);

  step("downloading the kernel");
  const meta = download(debDir, [KERNEL_PACKAGE])[0]!;
  const versioned = dependencyNames(field(meta.file, "Depends")).find((n) => n.startsWith("linux-image-"));
  if (!versioned) throw new Error(`${KERNEL_PACKAGE} ${meta.version} depends on no linux-image package`);
  const kernelDeb = download(debDir, [versioned])[0]!;
  const kernelRoot = join(work, `kernel-${kernelDeb.sha256.slice(0, 16)}`);
  if (!existsSync(join(kernelRoot, ".unpacked"))) {
    rmSync(kernelRoot, { recursive: true, force: true });
    extract(kernelDeb, kernelRoot);
    writeFileSync(join(kernelRoot, ".unpacked"), "");
  }
  const kernelVersion = readdirSync(join(kernelRoot, "lib", "modules"))[0]!;
  const vmlinuz = join(kernelRoot, "boot", `vmlinuz-${kernelVersion}`);
  const modRoot = join(kernelRoot, "lib", "modules", kernelVersion);
  const modulePaths = new Map(
    walk(modRoot)
      .filter((p) => /\.ko$/.test(p))
      .map((p) => [moduleName(p), p] as const),
  );
  const builtin = new Set(readFileSync(join(modRoot, "modules.builtin"), "utf8").split("\n").filter(Boolean).map(moduleName));
  const plan = planModules(MODULES, modulePaths, builtin, (name) => dependsOf(modinfo(readFileSync(join(modRoot, modulePaths.get(name)!)))));
  step(`kernel ${kernelVersion}: ${plan.load.length} modules (${plan.builtin.join(", ") || "none"} built in)`);

  const tree = new ImageTree();
  const loader = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"].map((d) => join(staging, d, "ld-linux-x86-64.so.2")).find((p) => existsSync(p));
  if (!loader) throw new Error("libc6 brought no dynamic loader");
  const libraryPath = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"].map((d) => join(staging, d)).join(":");

  /** A file of the unpacked packages, with the links leading to it and, for a program, its libraries. */
  const fromStaging = (rel: string, seen = new Set<string>()): void => {
    if (seen.has(rel)) return;
    seen.add(rel);
    const abs = join(staging, rel);
    const st = lstatSync(abs);
    if (st.isSymbolicLink()) {
      const target = readlinkSync(abs);
      tree.symlink(rel, target);
      fromStaging(target.startsWith("/") ? target.slice(1) : posix.normalize(posix.join(posix.dirname(rel), target)), seen);
      return;
    }
    const data = readFileSync(abs);
    tree.file(rel, data, st.mode & 0o7777);
    const interpreter = interpreterOf(data);
    if (interpreter) librariesOf(abs, interpreter, rel, seen);
  };
  const librariesOf = (abs: string, interpreter: string, what: string, seen = new Set<string>()): void => {
    // The packages' own loader, searching the packages' library directories only: this machine's libraries never slip in.
    const ldd = parseLdd(execFileSync(loader, ["--inhibit-cache", "--library-path", libraryPath, "--list", abs], { encoding: "utf8" }));
    if (ldd.missing.length > 0) throw new Error(`${what} needs ${ldd.missing.join(", ")}, which no package of the build has`);
    for (const lib of ldd.libraries) {
      const rel = relative(staging, lib.path);
      if (rel.startsWith("..")) throw new Error(`${what} needs ${lib.soname}, found only outside the packages (${lib.path})`);
      fromStaging(rel, seen);
    }
    fromStaging(interpreter.replace(/^\/+/, ""), seen);
  };

  step("collecting programs and libraries");
  const commands = new Set<string>(["node"]);
  for (const [pkg, spec] of Object.entries(PACKAGES)) {
    for (const cmd of spec.commands) {
      const rel = ["usr/sbin", "usr/bin", "sbin", "bin"].map((d) => `${d}/${cmd}`).find((p) => existsSync(join(staging, p)));
      if (!rel) throw new Error(`${pkg} has no program ${cmd}`);
      fromStaging(rel);
      commands.add(cmd);
    }
    for (const f of spec.files ?? []) fromStaging(f);
  }
  const nodeBinary = readFileSync(process.execPath);
  const nodeLoader = interpreterOf(nodeBinary);
  if (!nodeLoader) throw new Error(`${process.execPath} is not a dynamically linked program`);
  tree.file("usr/bin/node", nodeBinary, 0o755);
  librariesOf(process.execPath, nodeLoader, "node");
  const applets = execFileSync(join(staging, "bin", "busybox"), ["--list-full"], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean);
  for (const link of appletLinks(applets, commands)) if (!tree.has(link.path)) tree.symlink(link.path, link.target);

  for (const m of plan.load) tree.file(`lib/modules/${kernelVersion}/${m}`, readFileSync(join(modRoot, m)), 0o644);

  step("bundling metal-hammer");
  const { bundled } = (await import(pathToFileURL(join(repo, "bin", "bundle.js")).href)) as { bundled: (name: string, entry: string) => Promise<string> };
  const bundle = readFileSync(fileURLToPath(await bundled("metal-hammer", "edge/hammer/main.ts")));
  tree.file(`${HAMMER_DIR}/metal-hammer.mjs`, bundle, 0o644);
  tree.file(`${HAMMER_DIR}/metal-hammer.js`, Buffer.from(renderHammerLauncher("metal-hammer.mjs")), 0o644);

  tree.file("init", Buffer.from(renderInit({ kernelVersion, modules: plan.load, hammer: `/${HAMMER_DIR}/metal-hammer.js` })), 0o755);
  tree.file("etc/metal/udhcpc.script", Buffer.from(renderUdhcpcScript()), 0o755);
  tree.file("etc/passwd", Buffer.from(PASSWD), 0o644);
  tree.file("etc/group", Buffer.from(GROUP), 0o644);
  tree.file("etc/lvm/lvm.conf", Buffer.from(LVM_CONF), 0o644);
  for (const d of ["proc", "sys", "dev", "run", "mnt"]) tree.dir(d);
  tree.dir("tmp", 0o1777);
  tree.dir("root", 0o700);
  tree.symlink("var/run", "../run");
  tree.char("dev/console", 0o600, 5, 1);

  step("writing the initramfs");
  const entries = tree.list();
  const cpio = writeCpio(entries, epoch);
  const zstd = join(staging, "usr", "bin", "zstd");
  // The packages' zstd at a fixed level and thread count: the same input gives the same bytes.
  const initrd = execFileSync(loader, ["--library-path", libraryPath, zstd, `-${level}`, "-T2", "-q", "-c"], { input: cpio, maxBuffer: 1 << 30 });
  writeFileSync(join(outDir, "initrd.img"), initrd);
  copyFileSync(vmlinuz, join(outDir, "vmlinuz"));
  const kernel = readFileSync(vmlinuz);

  const pkg = (d: Deb) => ({ name: d.name, version: d.version, sha256: d.sha256 });
  const manifest = {
    sourceDateEpoch: epoch,
    kernel: { version: kernelVersion, package: pkg(kernelDeb), modules: plan.load, builtinModules: plan.builtin },
    packages: debs.map(pkg),
    node: { version: process.version, sha256: sha256(nodeBinary) },
    hammerBundle: { bytes: bundle.length, sha256: sha256(bundle) },
    initramfs: { files: entries.length, cpioBytes: cpio.length, compression: `zstd -${level}` },
    outputs: {
      vmlinuz: { bytes: kernel.length, sha256: sha256(kernel) },
      "initrd.img": { bytes: initrd.length, sha256: sha256(initrd) },
    },
  };
  writeFileSync(join(work, "initramfs.cpio"), cpio);
  writeFileSync(join(outDir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  step("done");
  console.log(`vmlinuz     ${mib(kernel.length)}  sha256 ${manifest.outputs.vmlinuz.sha256}`);
  console.log(`initrd.img  ${mib(initrd.length)} (${mib(cpio.length)} unpacked, ${entries.length} entries)  sha256 ${manifest.outputs["initrd.img"].sha256}`);
  console.log(`written to ${relative(process.cwd(), outDir) || "."}`);
}

main().catch((err: unknown) => {
  console.error(`build:discovery-image: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
