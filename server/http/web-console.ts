import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/** Where `npm run build:web` puts the console (scripts/build-web.ts), relative to this file in the source tree. */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL("../../dist/web", import.meta.url));

/**
 * The console's one policy: its script, styles and API calls come from this
 * origin only; nothing inline, no frames, no forms posted elsewhere, no
 * plugins. The console calls the API on the same port, so connect-src 'self'
 * covers Connect and gRPC-Web.
 */
export const WEB_CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Asset URLs live under this prefix; the console's own pages under /ui (it routes with the URL hash). */
export const ASSET_PREFIX = "/ui/assets/";

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

/** A file held in memory: the console is a few hundred KiB, read once, never from a path a request names. */
interface Asset {
  readonly type: string;
  readonly body: Buffer;
  /** Set when gzip makes it smaller. */
  readonly gzip?: Buffer;
}

interface Loaded {
  readonly index: Asset;
  /** By file name (no directories): a request can only pick one of these names. */
  readonly assets: ReadonlyMap<string, Asset>;
}

/** Only plain names: build output is `name-HASH.ext`. Anything else in the folder is ignored. */
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function asset(type: string, body: Buffer): Asset {
  const gz = gzipSync(body, { level: 9 });
  return { type, body, gzip: gz.length < body.length ? gz : undefined };
}

function load(dir: string): Loaded | undefined {
  const indexPath = join(dir, "index.html");
  if (!existsSync(indexPath)) return undefined;
  const assets = new Map<string, Asset>();
  const assetDir = join(dir, "assets");
  if (existsSync(assetDir)) {
    for (const name of readdirSync(assetDir)) {
      const path = join(assetDir, name);
      const ext = name.slice(name.lastIndexOf("."));
      if (!ASSET_NAME.test(name) || !(ext in TYPES) || !statSync(path).isFile()) continue;
      assets.set(name, asset(TYPES[ext]!, readFileSync(path)));
    }
  }
  return { index: asset("text/html; charset=utf-8", readFileSync(indexPath)), assets };
}

type Request = { method?: string; url?: string; headers: Record<string, string | string[] | undefined> };
type Response = ServerResponse | Http2ServerResponse;

/** Answers a request for the console; false when the request is not the console's (an RPC, /metrics, anything else). */
export type WebConsole = (req: Request, res: Response) => boolean;

/**
 * Serves the built console from `dir` (index.html and assets/) on the API's
 * own port: "/" and "/ui[/...]" answer index.html, "/ui/assets/NAME" one of
 * the built files. Nothing else is touched, so RPC paths (/metal.*,
 * /grpc.*, /masterdata.*), /metrics and the rest go where they went.
 *
 * The files are read into memory once: a request names a key of that map,
 * never a path on disk, so no URL can reach outside the folder. A folder
 * without index.html (no `npm run build:web` yet) is looked for again on
 * each request for "/" until it appears; until then `fallback` answers "/"
 * (the home page says how to build the console).
 */
export function createWebConsole(dir: string, fallback: (req: Request, res: Response) => boolean): WebConsole {
  let loaded = load(dir);
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "").split("?")[0]!;
    const isPage = path === "/" || path === "/ui" || (path.startsWith("/ui/") && !path.startsWith(ASSET_PREFIX));
    const isAsset = path.startsWith(ASSET_PREFIX);
    if (!isPage && !isAsset) return false;
    loaded ??= load(dir);
    if (!loaded) return path === "/" ? fallback(req, res) : false;
    if (isPage) {
      send(req, res, loaded.index, "no-cache");
      return true;
    }
    const found = loaded.assets.get(path.slice(ASSET_PREFIX.length));
    if (!found) {
      // A stale hashed name (the console was rebuilt): a clear 404 the browser does not cache, not index.html.
      res.writeHead(404, { ...securityHeaders(), "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      if (req.method === "HEAD") res.end();
      else res.end("not found\n");
      return true;
    }
    // Hashed names never change content: cache for a year.
    send(req, res, found, "public, max-age=31536000, immutable");
    return true;
  };
}

const securityHeaders = () => ({
  "content-security-policy": WEB_CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
});

function acceptsGzip(req: Request): boolean {
  const v = req.headers["accept-encoding"];
  return /\bgzip\b/.test(Array.isArray(v) ? v.join(",") : (v ?? ""));
}

function send(req: Request, res: Response, a: Asset, cacheControl: string): void {
  const gz = a.gzip && acceptsGzip(req) ? a.gzip : undefined;
  const body = gz ?? a.body;
  res.writeHead(200, {
    ...securityHeaders(),
    "content-type": a.type,
    "cache-control": cacheControl,
    "content-length": String(body.length),
    vary: "accept-encoding",
    ...(gz ? { "content-encoding": "gzip" } : {}),
  });
  if (req.method === "HEAD") res.end();
  else res.end(body);
}
