import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Debian packages for the image, fetched with apt-get from the mirror this
 * machine is configured with (no other source is added). Each is verified
 * against the SHA256 apt's index gives for it, so a build names exactly the
 * package files it used.
 */
export interface Deb {
  name: string;
  version: string;
  file: string;
  sha256: string;
}

/**
 * The package names a Depends or Pre-Depends field names: of alternatives
 * ("a | b") the first, without version constraints or architecture
 * qualifiers.
 */
export function dependencyNames(field: string): string[] {
  return field
    .split(",")
    .map((clause) => clause.split("|")[0]!.trim())
    .map((dep) => dep.replace(/\s*\(.*\)\s*$/, "").replace(/:\w+$/, ""))
    .filter(Boolean);
}

/**
 * The shared libraries a package brings along are in Debian's lib*
 * packages (and zlib1g, the one library package named otherwise that these
 * tools need); everything else a package depends on (debconf, udev,
 * adduser, init scripts) is for an installed system, not for running its
 * programs. A library missed here fails the build, naming it.
 */
export const isLibraryPackage = (name: string): boolean => name.startsWith("lib") || name === "zlib1g";

/** `apt-get download --print-uris` lines: 'URI' file size SHA256:hex. */
export function parsePrintUris(output: string): { file: string; sha256: string }[] {
  const out: { file: string; sha256: string }[] = [];
  for (const line of output.split("\n")) {
    const m = /^'[^']+' (\S+) \d+ SHA256:([0-9a-f]{64})$/.exec(line.trim());
    if (m) out.push({ file: m[1]!, sha256: m[2]! });
  }
  return out;
}

const sha256File = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Downloads `names` into `dir` (a file already there with the right hash is kept) and returns them, as apt resolved each. */
export function download(dir: string, names: readonly string[]): Deb[] {
  if (names.length === 0) return [];
  // Asked from an empty directory: apt leaves out a package whose file is in the current one already.
  const empty = mkdtempSync(join(tmpdir(), "debs-"));
  let uris: { file: string; sha256: string }[];
  try {
    uris = parsePrintUris(execFileSync("apt-get", ["download", "--print-uris", ...names], { cwd: empty, encoding: "utf8" }));
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
  // Matched by name (a file is name_version_arch.deb), not by the order apt prints them in.
  const planned = names.map((name) => {
    const p = uris.find((u) => u.file.startsWith(`${name}_`));
    if (!p) throw new Error(`apt-get cannot download ${name}; run apt-get update?`);
    return p;
  });
  const missing = names.filter((_, i) => {
    const p = join(dir, planned[i]!.file);
    return !existsSync(p) || sha256File(p) !== planned[i]!.sha256;
  });
  if (missing.length > 0) execFileSync("apt-get", ["download", ...missing], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  return planned.map((p, i) => {
    const file = join(dir, p.file);
    const got = sha256File(file);
    if (got !== p.sha256) throw new Error(`${p.file}: SHA256 ${got}, the archive index says ${p.sha256}`);
    return { name: names[i]!, version: field(file, "Version"), file, sha256: got };
  });
}

export const field = (debFile: string, name: string): string => execFileSync("dpkg-deb", ["-f", debFile, name], { encoding: "utf8" }).trim();

/**
 * `seeds` and every library package they depend on, transitively, fetched.
 * Sorted by name, so the order they are unpacked in is the same each build.
 */
export function downloadWithLibraries(dir: string, seeds: readonly string[]): Deb[] {
  const got = new Map<string, Deb>();
  let wanted = [...new Set(seeds)];
  while (wanted.length > 0) {
    for (const deb of download(dir, wanted)) got.set(deb.name, deb);
    const next = new Set<string>();
    for (const name of wanted) {
      const deb = got.get(name)!;
      const deps = dependencyNames(`${field(deb.file, "Depends")},${field(deb.file, "Pre-Depends")}`);
      for (const d of deps) if (isLibraryPackage(d) && !got.has(d)) next.add(d);
    }
    wanted = [...next].sort();
  }
  return [...got.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function extract(deb: Deb, into: string): void {
  execFileSync("dpkg-deb", ["-x", deb.file, into]);
}
