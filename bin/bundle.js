// The bins run from bundles of their TypeScript sources, built with esbuild on
// first use and again whenever one of the files that went into a bundle (or
// the lock file, or this file) is newer than it. Loading one plain JavaScript
// file starts several times faster than transpiling and resolving hundreds of
// modules on the fly (tsx), and start-up is what a person waits for.
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import module from "node:module";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cacheDir = join(root, "node_modules", ".cache", "metal-bins");

// Node 22.1 and later keep V8's compiled code of the bundles between starts; Node 20 has no such cache and skips this.
module.enableCompileCache?.(join(cacheDir, "compile-cache"));

/**
 * Packages that find their own files at run time (PGlite its wasm and data
 * files, pino its transport workers, oclif its plugin manifest) or load
 * optional native add-ons (ssh2, pg) stay packages; the rest is bundled.
 */
export const RUNTIME_PACKAGES = ["@electric-sql/pglite", "pino", "pino-pretty", "thread-stream", "ssh2", "cpu-features", "pg", "pg-native", "@oclif/core"];

const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
};

/** True when the bundle is missing or older than any file it was built from. */
function stale(bundle, inputsFile) {
  let built;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    return true;
  }
  let inputs;
  try {
    inputs = JSON.parse(readFileSync(inputsFile, "utf8"));
  } catch {
    return true;
  }
  // A deleted input counts as newer (Infinity): its importer changed too, but this is cheaper to reason about.
  const deps = [fileURLToPath(import.meta.url), join(root, "package-lock.json"), ...inputs.map((p) => join(root, p))];
  return deps.some((p) => mtime(p) > built);
}

/**
 * A module's `import.meta.url` inside a bundle would name the bundle; code
 * that finds files beside itself (migrations, package.json) needs its own
 * source's. Rewritten relative to the bundle's place, so that a moved
 * checkout still finds them.
 */
function ownModuleUrls(bundleDir) {
  return {
    name: "own-module-urls",
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (args.path.includes(`${sep}node_modules${sep}`)) return undefined;
        const source = await readFile(args.path, "utf8");
        if (!source.includes("import.meta.url")) return undefined;
        const rel = relative(bundleDir, args.path).split(sep).join("/");
        return { contents: source.replaceAll("import.meta.url", `new URL(${JSON.stringify(rel)}, import.meta.url).href`), loader: "ts" };
      });
    },
  };
}

/** A lock older than this belongs to a builder that died; builds take seconds. */
const STALE_LOCK_MS = 120_000;

/**
 * Runs `build` holding a lock directory, so that processes starting at once
 * (a test suite spawning bins in parallel) build a bundle once: the others
 * wait for the lock, then find the bundle fresh. Without the lock (it cannot
 * be made) `build` runs anyway; the rename keeps that correct, only wasteful.
 */
async function whileLocked(lock, isFresh, build) {
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== "EEXIST") return build();
      if (Date.now() - mtime(lock) > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 50));
      if (isFresh()) return undefined;
    }
  }
  try {
    if (!isFresh()) await build();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
  return undefined;
}

/**
 * The file URL of the bundle named `name` built from `entry` (a path relative
 * to the repository), building it first when it is missing or stale.
 */
export async function bundled(name, entry) {
  const bundle = join(cacheDir, `${name}.mjs`);
  const inputsFile = join(cacheDir, `${name}.inputs.json`);
  const isFresh = () => !stale(bundle, inputsFile);
  if (isFresh()) return pathToFileURL(bundle).href;
  mkdirSync(cacheDir, { recursive: true });
  await whileLocked(`${bundle}.lock`, isFresh, async () => {
    const { build } = await import("esbuild");
    // Written aside and renamed: a process that does not wait for the lock never reads half a bundle.
    const tmp = `${bundle}.${process.pid}.tmp`;
    const result = await build({
      absWorkingDir: root,
      entryPoints: [join(root, entry)],
      outfile: tmp,
      bundle: true,
      external: RUNTIME_PACKAGES,
      platform: "node",
      format: "esm",
      target: "node20",
      metafile: true,
      plugins: [ownModuleUrls(cacheDir)],
      // Bundled CommonJS packages require Node's built-ins; an ES module needs a require for that.
      banner: { js: 'import { createRequire as __bundleRequire } from "node:module"; const require = __bundleRequire(import.meta.url);' },
      logLevel: "error",
    });
    const inputs = Object.keys(result.metafile.inputs).filter((p) => !p.startsWith("node_modules/") && !p.includes("/node_modules/"));
    writeFileSync(`${inputsFile}.${process.pid}.tmp`, JSON.stringify(inputs));
    renameSync(`${inputsFile}.${process.pid}.tmp`, inputsFile);
    renameSync(tmp, bundle);
  });
  return pathToFileURL(bundle).href;
}
