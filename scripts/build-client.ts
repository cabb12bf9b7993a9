/**
 * Builds the client package (`metal/client`, `metal/client/web`): tsc with
 * tsconfig.client.json compiles client/index.ts and client/web.ts, and every
 * client/ and gen/ module they import, to ES modules with .d.ts in
 * dist/client/ (imports keep their .js endings, so plain node loads them).
 * The exports of package.json point there.
 */
import { execFile } from "node:child_process";
import { readdir, rename, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const ROOT = resolve(import.meta.dirname, "..");
const OUT = join(ROOT, "dist", "client");

async function sizeOf(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    files++;
    bytes += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return { files, bytes };
}

// Built beside it, then swapped in: a clean build (a module dropped from client/ does not linger), and a
// program importing the package meanwhile sees the old build or the new one, never half of one.
const next = `${OUT}.building-${process.pid}`;
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
try {
  await promisify(execFile)(process.execPath, [tsc, "-p", join(ROOT, "tsconfig.client.json"), "--outDir", next], { cwd: ROOT });
} catch (err) {
  await rm(next, { recursive: true, force: true });
  const { stdout = "", stderr = "" } = err as { stdout?: string; stderr?: string };
  process.stderr.write(`build-client: tsc failed\n${stdout}${stderr}`);
  process.exit(1);
}
const old = `${OUT}.old-${process.pid}`;
await rename(OUT, old).catch(() => {});
await rename(next, OUT);
await rm(old, { recursive: true, force: true });
const { files, bytes } = await sizeOf(OUT);
process.stdout.write(`build-client: dist/client: ${files} files, ${(bytes / 1024).toFixed(0)} KiB\n`);
