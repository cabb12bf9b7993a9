/**
 * Builds the web console (web/) into dist/web: minified ESM under assets/
 * with content-hashed names (the entry, the chunks it shares with what is
 * loaded later, each lazily imported page's chunk such as the serial
 * console's xterm.js, and the stylesheet), and an index.html that loads the
 * entry and preloads its static chunks, so they arrive in parallel instead
 * of after the entry is parsed (no inline script or style: the server's
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
import { type BuildOptions, build, type Metafile } from "esbuild";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface WebBuild {
  readonly outDir: string;
  /** File (relative to outDir) -> bytes and gzip bytes. */
  readonly files: readonly { name: string; bytes: number; gzipBytes: number }[];
  /** What opening the console loads (relative to outDir): index.html, the entry, its static chunks, the stylesheet. Lazy chunks are not in it. */
  readonly firstLoad: readonly string[];
}

/** The asset URL prefix the server answers (server/http/web-console.ts ASSET_PREFIX). */
const ASSET_URL = "/ui/assets/";

export async function buildWeb(outDir = join(ROOT, "dist", "web")): Promise<WebBuild> {
  await rm(outDir, { recursive: true, force: true });
  const assetDir = join(outDir, "assets");
  await mkdir(assetDir, { recursive: true });
  const options = {
    absWorkingDir: ROOT,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["chrome120", "firefox120", "safari17"],
    minify: true,
    jsx: "automatic",
    entryNames: "[name]-[hash]",
    chunkNames: "[name]-[hash]",
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
  } satisfies BuildOptions;
  // The app; lazily imported pages (import()) become chunks of their own, loaded when first opened.
  const result = await build({ ...options, entryPoints: { app: join(ROOT, "web", "main.tsx") }, splitting: true });
  // The reloaded tab's Watch, sent before the app has arrived and run (web/early-watch.ts): a build of its
  // own, so it shares no chunk (not even esbuild's helpers) with the app and waits for nothing.
  const earlyResult = await build({ ...options, entryPoints: { early: join(ROOT, "web", "early-watch.ts") }, splitting: false });
  const entryOf = (outputs: Outputs & Metafile["outputs"]) => {
    const found = Object.entries(outputs).find(([, o]) => o.entryPoint !== undefined);
    if (!found) throw new Error("esbuild produced no entry script");
    return found;
  };
  const outputs = [...Object.keys(result.metafile.outputs), ...Object.keys(earlyResult.metafile.outputs)].map((p) => basename(p));
  const [entryPath, entryOutput] = entryOf(result.metafile.outputs);
  const script = basename(entryPath);
  const early = basename(entryOf(earlyResult.metafile.outputs)[0]);
  const style = entryOutput.cssBundle ? basename(entryOutput.cssBundle) : undefined;
  const preloads = staticImports(result.metafile.outputs, entryPath).map((p) => basename(p));
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>metal console</title>
${style ? `<link rel="stylesheet" href="${ASSET_URL}${style}">\n` : ""}<script type="module" src="${ASSET_URL}${early}"></script>
<script type="module" src="${ASSET_URL}${script}"></script>
${preloads.map((n) => `<link rel="modulepreload" href="${ASSET_URL}${n}">\n`).join("")}</head>
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
  const firstLoad = ["index.html", ...[early, script, ...preloads, ...(style ? [style] : [])].map((n) => `assets/${n}`)].sort();
  return { outDir, files, firstLoad };
}

type Outputs = Record<string, { imports: readonly { path: string; kind: string }[] }>;

/** The chunks `from` imports statically, directly or through other chunks (what the browser needs before it runs `from`). */
function staticImports(outputs: Outputs, from: string): string[] {
  const seen = new Set<string>();
  const visit = (path: string) => {
    for (const i of outputs[path]?.imports ?? []) {
      if (i.kind !== "import-statement" || seen.has(i.path)) continue;
      seen.add(i.path);
      visit(i.path);
    }
  };
  visit(from);
  return [...seen].sort();
}

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildWeb(process.argv[2] ? resolve(process.argv[2]) : undefined);
  const rel = relative(process.cwd(), out.outDir) || ".";
  for (const f of out.files) console.log(`${join(rel, f.name).padEnd(48)} ${kib(f.bytes).padStart(11)}  gzip ${kib(f.gzipBytes).padStart(10)}`);
  const total = out.files.filter((f) => out.firstLoad.includes(f.name)).reduce((s, f) => s + f.gzipBytes, 0);
  console.log(`${"first load (gzip, everything index.html pulls)".padEnd(48)} ${"".padStart(11)}  gzip ${kib(total).padStart(10)}`);
}
