#!/usr/bin/env node
// metalctl runs from a bundle of its TypeScript sources (cli/ and gen/), built
// with esbuild the first time and again whenever a source is newer than the
// bundle. Loading one plain JavaScript file starts several times faster than
// transpiling and resolving hundreds of modules on the fly, and the CLI's
// start-up is most of `metalctl machine list`.
import { mkdirSync, readdirSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bundle = join(root, "node_modules", ".cache", "metalctl", "metalctl.mjs");

/** The newest modification time of the TypeScript files under `dir`. */
function newest(dir) {
  let t = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) t = Math.max(t, newest(p));
    else if (entry.name.endsWith(".ts")) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

function builtAt() {
  try {
    return statSync(bundle).mtimeMs;
  } catch {
    return 0;
  }
}

// Libraries are in the bundle too: a changed lock file (npm ci, npm install) rebuilds it.
const lockTime = () => {
  try {
    return statSync(join(root, "package-lock.json")).mtimeMs;
  } catch {
    return 0;
  }
};

if (builtAt() < Math.max(newest(join(root, "cli")), newest(join(root, "gen")), lockTime())) {
  const { build } = await import("esbuild");
  mkdirSync(dirname(bundle), { recursive: true });
  // Written aside and renamed: two metalctl starting at once never read half a bundle.
  const tmp = `${bundle}.${process.pid}.tmp`;
  await build({
    entryPoints: [join(root, "cli", "main.ts")],
    outfile: tmp,
    bundle: true,
    // oclif finds its own files at run time, so it stays a package; everything else is bundled.
    external: ["@oclif/core"],
    platform: "node",
    format: "esm",
    target: "node20",
    // Bundled CommonJS packages (yaml) require Node's built-ins; an ES module needs a require for that.
    banner: { js: 'import { createRequire as __metalctlRequire } from "node:module"; const require = __metalctlRequire(import.meta.url);' },
    logLevel: "error",
  });
  renameSync(tmp, bundle);
}

const { runMetalctl } = await import(pathToFileURL(bundle).href);
process.exitCode = await runMetalctl(process.argv.slice(2));
