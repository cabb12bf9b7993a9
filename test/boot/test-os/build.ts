/**
 * Builds the small OS image the real-boot tests install: a root filesystem
 * made of the discovery image's own files (busybox, lldpd, util-linux, the
 * kernel and its modules) without metal-hammer and Node, with /boot/vmlinuz,
 * a tiny /boot/initrd.img, a /sbin/init that phones home over LLDP and the
 * install step metal-hammer runs. Written as dist/test-os-image/rootfs.tar.lz4
 * (a reproducible GNU tar, lz4-compressed) with its .sha256. See README.md.
 *
 * `npx tsx test/boot/test-os/build.ts` builds it on its own.
 */

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readCpio } from "../../../scripts/discovery-image/cpio.js";
import { ensureDiscoveryImage } from "../discovery-image.js";
import { buildInitramfs } from "./initramfs.js";
import { keepInRootfs, putFile, stageEntries } from "./rootfs.js";
import { LLDPD_CONF, MACHINE_UUID_FILE, renderInstallStep, renderSystemInit } from "./scripts.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..", "..");

export interface BuildOptions {
  /** Default: dist/discovery-image of the repository. */
  discoveryDir?: string;
  /** Default: dist/test-os-image of the repository. */
  outDir?: string;
  /** Build even when the output is up to date. */
  force?: boolean;
  log?: (line: string) => void;
}

export interface BuiltImage {
  file: string;
  sha256: string;
  bytes: number;
}

/** The discovery manifest's fields used here. */
interface DiscoveryManifest {
  sourceDateEpoch: number;
  kernel: { version: string; modules: string[] };
}

export const IMAGE_FILE = "rootfs.tar.lz4";
const STAMP_FILE = "stamp.json";

const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

/**
 * What the output is made from: the discovery image's kernel and initramfs,
 * and the builder's own sources (its version). A stamp with the same
 * values means the output is up to date.
 */
function inputsStamp(discoveryDir: string): string {
  const sources = readdirSync(here)
    .filter((f) => f.endsWith(".ts"))
    .sort()
    .map((f) => `${f}:${sha256(readFileSync(join(here, f)))}`);
  return JSON.stringify({ "initrd.img": sha256(readFileSync(join(discoveryDir, "initrd.img"))), vmlinuz: sha256(readFileSync(join(discoveryDir, "vmlinuz"))), builder: sources }, null, 2);
}

function readBuilt(file: string): BuiltImage {
  const line = readFileSync(`${file}.sha256`, "utf8");
  return { file, sha256: line.slice(0, 64), bytes: statSync(file).size };
}

export async function buildTestOsImage(opts: BuildOptions = {}): Promise<BuiltImage> {
  const log = opts.log ?? (() => {});
  const discoveryDir = resolve(opts.discoveryDir ?? join(repo, "dist", "discovery-image"));
  const outDir = resolve(opts.outDir ?? join(repo, "dist", "test-os-image"));
  const file = join(outDir, IMAGE_FILE);
  await ensureDiscoveryImage(discoveryDir, log);

  const stamp = inputsStamp(discoveryDir);
  const stampFile = join(outDir, STAMP_FILE);
  if (!opts.force && existsSync(file) && existsSync(`${file}.sha256`) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) {
    log(`up to date: ${file}`);
    return readBuilt(file);
  }

  const started = Date.now();
  const manifest = JSON.parse(readFileSync(join(discoveryDir, "manifest.json"), "utf8")) as DiscoveryManifest;
  const { version } = manifest.kernel;
  const epoch = manifest.sourceDateEpoch;
  const cpio = execFileSync("zstd", ["-dc", join(discoveryDir, "initrd.img")], { maxBuffer: 1 << 30 });
  const entries = readCpio(cpio);
  const byPath = new Map(entries.map((e) => [e.path, e] as const));
  const fileOf = (path: string): Buffer => {
    const e = byPath.get(path);
    if (!e) throw new Error(`the discovery initramfs has no ${path}`);
    return e.data;
  };
  // The discovery tree keeps files at their /usr paths (/lib and /bin are links into /usr).
  const moduleFile = (m: string) => fileOf(`usr/lib/modules/${version}/${m}`);

  // One work directory per build, so two builds at once cannot mix their files.
  const work = join(repo, "dist", `.test-os-image-work-${process.pid}`);
  const root = join(work, "root");
  try {
    stageEntries(
      root,
      entries.filter((e) => keepInRootfs(e)),
    );
    const initramfs = buildInitramfs({ kernelVersion: version, loadOrder: manifest.kernel.modules, moduleFile, busybox: fileOf("usr/bin/busybox"), epoch });
    log(`initramfs: ${initramfs.image.length} bytes, modules ${initramfs.modules.join(" ")}`);
    putFile(root, "boot/vmlinuz", readFileSync(join(discoveryDir, "vmlinuz")), 0o644);
    putFile(root, "boot/initrd.img", initramfs.image, 0o644);
    putFile(root, "usr/sbin/init", renderSystemInit({ kernelVersion: version, modules: manifest.kernel.modules }), 0o755);
    putFile(root, "usr/local/bin/metal-install", renderInstallStep(), 0o755);
    putFile(root, "etc/hostname", "metal-test-os\n", 0o644);
    putFile(root, "etc/os-release", 'ID=metal-test-os\nNAME="metal test OS"\nPRETTY_NAME="metal test OS (discovery image files, busybox init)"\n', 0o644);
    // Left empty on purpose: the install step fills them in; an image that never ran it says so on boot.
    mkdirSync(join(root, dirname(LLDPD_CONF)), { recursive: true, mode: 0o755 });
    mkdirSync(join(root, dirname(MACHINE_UUID_FILE)), { recursive: true, mode: 0o755 });

    const tar = join(work, "rootfs.tar");
    // Reproducible: names sorted, owners numeric root, one mtime, no atime/ctime (gnu format stores neither).
    execFileSync("tar", ["--create", "--file", tar, "--directory", root, "--sort=name", "--format=gnu", "--numeric-owner", "--owner=0", "--group=0", `--mtime=@${epoch}`, "."]);
    const tmp = join(work, IMAGE_FILE);
    execFileSync("lz4", ["-q", "-f", "-9", tar, tmp]);
    const image = readFileSync(tmp);
    const digest = sha256(image);
    mkdirSync(outDir, { recursive: true });
    // The stamp goes last: an interrupted build leaves no stamp that matches.
    rmSync(stampFile, { force: true });
    renameSync(tmp, file);
    writeFileSync(`${file}.sha256`, `${digest}  ${IMAGE_FILE}\n`);
    writeFileSync(stampFile, stamp);
    log(`${file}: ${image.length} bytes (tar ${statSync(tar).size} bytes), sha256 ${digest}, ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { file, sha256: digest, bytes: image.length };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildTestOsImage({ force: process.argv.includes("--force"), log: (l) => console.log(l) }).catch((err: unknown) => {
    console.error(`test-os build: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  });
}
