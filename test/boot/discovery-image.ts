import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DISCOVERY_IMAGE_DIR = join(REPO, "dist", "discovery-image");

/**
 * Makes sure dist/discovery-image holds a discovery image whose metal-hammer
 * is the one of this working tree: built when missing, built again when the
 * hammer bundle it carries (its SHA-256 in manifest.json) is not the bundle
 * the sources make now. A stale image would boot yesterday's hammer, and a
 * test would judge code that is no longer there.
 */
export async function ensureDiscoveryImage(dir = DISCOVERY_IMAGE_DIR, log: (line: string) => void = console.log): Promise<void> {
  const manifestFile = join(dir, "manifest.json");
  const present = ["vmlinuz", "initrd.img", "manifest.json"].every((f) => existsSync(join(dir, f)));
  if (present) {
    const built = (JSON.parse(readFileSync(manifestFile, "utf8")) as { hammerBundle?: { sha256?: string } }).hammerBundle?.sha256;
    if (built !== undefined && built === (await currentHammerSha256())) return;
    log("the discovery image carries another metal-hammer than this working tree's: building it again");
  } else {
    log("no discovery image yet: building it (npm run build:discovery-image)");
  }
  if (resolve(dir) !== DISCOVERY_IMAGE_DIR) throw new Error(`${dir} holds no current discovery image`);
  const r = spawnSync("npm", ["run", "build:discovery-image"], { cwd: REPO, stdio: "inherit" });
  if (r.status !== 0) throw new Error("npm run build:discovery-image failed");
}

/** The SHA-256 of the hammer bundle the working tree makes (bin/bundle.js rebuilds it only when a source changed). */
async function currentHammerSha256(): Promise<string> {
  const { bundled } = (await import(pathToFileURL(join(REPO, "bin", "bundle.js")).href)) as { bundled: (name: string, entry: string) => Promise<string> };
  return createHash("sha256")
    .update(readFileSync(fileURLToPath(await bundled("metal-hammer", "edge/hammer/main.ts"))))
    .digest("hex");
}
