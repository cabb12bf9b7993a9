/**
 * Builds the web console (web/) into dist/web: one minified ESM bundle and
 * its stylesheet under assets/ with content-hashed names, and an index.html
 * that loads them (no inline script or style: the server's
 * Content-Security-Policy forbids both). Same sources, same bytes: the output
 * folder is emptied first and esbuild's output is deterministic.
 *
 *   npm run build:web            -> dist/web
 *   tsx scripts/build-web.ts DIR -> DIR
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface WebBuild {
  readonly outDir: string;
  /** File (relative to outDir) -> bytes and gzip bytes. */
  readonly files: readonly { name: string; bytes: number; gzipBytes: number }[];
}

/** The asset URL prefix the server answers (server/http/web-console.ts ASSET_PREFIX). */
const ASSET_URL = "/ui/assets/";

export async function buildWeb(outDir = join(ROOT, "dist", "web")): Promise<WebBuild> {
  await rm(outDir, { recursive: true, force: true });
  const assetDir = join(outDir, "assets");
  await mkdir(assetDir, { recursive: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { app: join(ROOT, "web", "main.tsx") },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["chrome120", "firefox120", "safari17"],
    minify: true,
    jsx: "automatic",
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    outdir: assetDir,
    // React's production build; nothing else reads the environment.
    define: { "process.env.NODE_ENV": '"production"' },
    legalComments: "none",
    charset: "utf8",
    sourcemap: false,
    metafile: true,
    write: true,
    logLevel: "warning",
    tsconfig: join(ROOT, "web", "tsconfig.json"),
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const script = outputs.find((n) => n.endsWith(".js"));
  const style = outputs.find((n) => n.endsWith(".css"));
  if (!script) throw new Error("esbuild produced no script");
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>metal console</title>
${style ? `<link rel="stylesheet" href="${ASSET_URL}${style}">\n` : ""}<script type="module" src="${ASSET_URL}${script}"></script>
</head>
<body>
<div id="root"></div>
<noscript>The metal console needs JavaScript. metalctl works without it.</noscript>
</body>
</html>
`;
  await writeFile(join(outDir, "index.html"), html);
  const files = await Promise.all(
    ["index.html", ...outputs.map((n) => `assets/${n}`)].sort().map(async (name) => {
      const body = await readFile(join(outDir, name));
      return { name, bytes: body.length, gzipBytes: gzipSync(body, { level: 9 }).length };
    }),
  );
  return { outDir, files };
}

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildWeb(process.argv[2] ? resolve(process.argv[2]) : undefined);
  const rel = relative(process.cwd(), out.outDir) || ".";
  for (const f of out.files) console.log(`${join(rel, f.name).padEnd(48)} ${kib(f.bytes).padStart(11)}  gzip ${kib(f.gzipBytes).padStart(10)}`);
  const total = out.files.reduce((s, f) => s + f.gzipBytes, 0);
  console.log(`${"first load (gzip, everything index.html pulls)".padEnd(48)} ${"".padStart(11)}  gzip ${kib(total).padStart(10)}`);
}
