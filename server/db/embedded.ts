import { cpSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, readFile, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, sep } from "node:path";
import { PGlite, type PGliteOptions } from "@electric-sql/pglite";

/**
 * Embedded PostgreSQL (PGlite) opened quickly. What a start spends without
 * this, measured on a 2-core machine: a new data directory runs initdb inside
 * WebAssembly (several seconds of CPU, twice: metal and masterdata); every
 * open compiles the 9 MB wasm module and zeroes PostgreSQL's default 128 MB of
 * shared buffers.
 */

/**
 * 8 MB of shared buffers instead of PostgreSQL's 128: an embedded database is
 * one connection over a few megabytes of data, and preparing 128 MB of buffers
 * was about half of every open's CPU time (a page not in them is one file
 * read away, in the operating system's cache).
 */
const START_PARAMS = [...PGlite.defaultStartParams, "-c", "shared_buffers=8MB"];

/** Where PGlite's package is: its wasm module, and its version keys the templates. */
function pgliteDist(): string {
  return dirname(createRequire(import.meta.url).resolve("@electric-sql/pglite"));
}

let wasmModule: Promise<WebAssembly.Module | undefined> | undefined;

/** The runtime's WebAssembly object: the ES2023 lib (no DOM) declares its types but not the value. */
const wasmRuntime = (globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<WebAssembly.Module> } }).WebAssembly;

/**
 * PGlite's 9 MB wasm module, compiled once per process and shared by its
 * databases (metal-api opens two). A missing file (another PGlite layout)
 * leaves PGlite to compile its own.
 */
function sharedWasmModule(): Promise<WebAssembly.Module | undefined> {
  wasmModule ??= readFile(join(pgliteDist(), "pglite.wasm")).then(
    (bytes) => wasmRuntime.compile(bytes),
    () => undefined,
  );
  return wasmModule;
}

async function options(): Promise<PGliteOptions> {
  const pgliteWasmModule = await sharedWasmModule();
  return { ...(pgliteWasmModule ? { pgliteWasmModule } : {}), startParams: START_PARAMS };
}

const isEmptyOrMissing = (dir: string) => !existsSync(dir) || readdirSync(dir).length === 0;

/** What a new database gets before it is used (its migrations), named by a key that changes when it does. */
export interface Preparation {
  /** Which database this prepares (one template per name is kept; older keys of it are removed). */
  name: string;
  key: string;
  run(pg: PGlite): Promise<void>;
}

/**
 * Templates of new data directories live beside the packages
 * (node_modules/.cache/metal-pglite/<PGlite version>/): "initdb" is a freshly
 * initialised cluster, made by PGlite itself and closed cleanly; one per
 * preparation key is that cluster with the migrations applied. A new data
 * directory is a copy of a template (a fraction of a second) instead of
 * initdb in WebAssembly plus every migration (several seconds of CPU each).
 * Migrations write schema only (no rows with random values or times), so a
 * copy is exactly the database a fresh start would make. Undefined where the
 * cache cannot be found; then every new directory is made from scratch.
 */
function templateRoot(): string | undefined {
  const dist = pgliteDist();
  const at = dist.lastIndexOf(`${sep}node_modules${sep}`);
  if (at < 0) return undefined;
  const pkg = JSON.parse(readFileSync(join(dist, "..", "package.json"), "utf8")) as { version: string };
  return join(dist.slice(0, at), "node_modules", ".cache", "metal-pglite", pkg.version);
}

const templates = new Map<string, Promise<string | undefined>>();

/** The template named `name`, made (once per process, and kept for later ones) from `from` plus `prepare`. */
function templateOf(name: string, from: () => Promise<string | undefined>, prepare?: Preparation): Promise<string | undefined> {
  let t = templates.get(name);
  if (!t) {
    t = (async () => {
      try {
        const root = templateRoot();
        if (!root) return undefined;
        const dir = join(root, name);
        if (existsSync(join(dir, "PG_VERSION"))) return dir;
        const source = await from();
        // Made aside and renamed: a process that starts meanwhile never copies half a template.
        const tmp = `${dir}.${process.pid}.tmp`;
        await rm(tmp, { recursive: true, force: true });
        await mkdir(dirname(tmp), { recursive: true });
        if (source) cpSync(source, tmp, { recursive: true });
        else await mkdir(tmp);
        const pg = new PGlite(tmp, await options());
        try {
          await pg.waitReady;
          await prepare?.run(pg);
        } finally {
          await pg.close();
        }
        await rename(tmp, dir).catch(async (err: unknown) => {
          // Another process made it first: theirs is as good.
          await rm(tmp, { recursive: true, force: true });
          if (!existsSync(join(dir, "PG_VERSION"))) throw err;
        });
        if (prepare) await removeOlderTemplates(root, prepare.name, name);
        return dir;
      } catch {
        return undefined;
      }
    })();
    templates.set(name, t);
  }
  return t;
}

/**
 * A new template of a database replaces the ones made for its earlier
 * migrations (40 MB each, with their images), which no start of this
 * checkout asks for any more.
 */
async function removeOlderTemplates(root: string, database: string, current: string): Promise<void> {
  const prefix = `prepared-${database}-`;
  for (const entry of readdirSync(root)) {
    if (entry.startsWith(prefix) && entry !== current && entry !== `${current}.tar` && !entry.includes(".tmp") && !entry.includes(".image")) {
      await rm(join(root, entry), { recursive: true, force: true });
    }
  }
}

const initdbTemplate = () => templateOf("initdb", async () => undefined);

const templateFor = (prepare: Preparation | undefined) => (prepare ? templateOf(`prepared-${prepare.name}-${prepare.key}`, initdbTemplate, prepare) : initdbTemplate());

const images = new Map<string, Promise<Blob | undefined>>();

/**
 * A template as a tar image (PGlite's own dumpDataDir), which an in-memory
 * database loads instead of running initdb and the migrations (tests open
 * those). Made once, beside the template, from a scratch copy of it.
 */
function imageOf(template: string): Promise<Blob | undefined> {
  let image = images.get(template);
  if (!image) {
    image = (async () => {
      try {
        const file = `${template}.tar`;
        if (!existsSync(file)) {
          const scratch = `${template}.${process.pid}.image`;
          await rm(scratch, { recursive: true, force: true });
          cpSync(template, scratch, { recursive: true });
          const pg = new PGlite(scratch, await options());
          try {
            await pg.waitReady;
            const tar = await pg.dumpDataDir("none");
            await writeFile(`${file}.${process.pid}.tmp`, Buffer.from(await tar.arrayBuffer()));
            await rename(`${file}.${process.pid}.tmp`, file);
          } finally {
            await pg.close();
            await rm(scratch, { recursive: true, force: true });
          }
        }
        return new Blob([await readFile(file)]);
      } catch {
        return undefined;
      }
    })();
    images.set(template, image);
  }
  return image;
}

/** Fills a new (missing or empty) data directory with a copy of the template; false when there is none. */
async function seedFromTemplate(dataDir: string, prepare: Preparation | undefined): Promise<boolean> {
  const source = await templateFor(prepare);
  if (!source) return false;
  const tmp = `${dataDir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  // Synchronous: about a thousand files, where the promise per file of fs.cp costs several times the copy.
  cpSync(source, tmp, { recursive: true });
  // Only an empty directory is replaced: anything else stays for PGlite to judge.
  if (existsSync(dataDir)) await rmdir(dataDir);
  await rename(tmp, dataDir);
  return true;
}

/**
 * Opens embedded PostgreSQL in `dataDir`, or in memory when it is undefined.
 * A new data directory starts as a copy of a template with `prepare` already
 * applied, an in-memory database as its image; the caller still runs its
 * migrations (then a quick no-op).
 */
export async function openPglite(dataDir: string | undefined, prepare?: Preparation): Promise<PGlite> {
  let loadDataDir: Blob | undefined;
  if (dataDir) {
    await mkdir(dirname(dataDir), { recursive: true });
    if (isEmptyOrMissing(dataDir) && !(await seedFromTemplate(dataDir, prepare).catch(() => false))) await mkdir(dataDir, { recursive: true });
  } else {
    const source = await templateFor(prepare);
    loadDataDir = source ? await imageOf(source) : undefined;
  }
  const pg = new PGlite(dataDir, { ...(await options()), ...(loadDataDir ? { loadDataDir } : {}) });
  await pg.waitReady;
  return pg;
}
