import http from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { haveChromium, launchChromium, SKIP_REASON } from "../web/browser.js";

const REPO = resolve(import.meta.dirname, "../..");

/**
 * `metal/client/web` in a real Chromium: the entry bundled by esbuild for the
 * browser, served from an origin of its own, calling a control plane that
 * allows that origin (METAL_CORS_ORIGINS), over gRPC-Web and Connect.
 */
describe.skipIf(!haveChromium)(`metal/client/web in Chromium${haveChromium ? "" : ` (${SKIP_REASON})`}`, () => {
  let pages: http.Server;
  let origin: string;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const wires: string[] = [];

  beforeAll(async () => {
    const bundle = await build({
      stdin: { contents: 'export * from "./client/web.ts";', resolveDir: REPO, loader: "ts" },
      bundle: true,
      platform: "browser",
      format: "esm",
      write: false,
      logLevel: "silent",
    });
    const js = bundle.outputFiles[0]!.text;
    const html = '<!doctype html><script type="module">import * as metal from "/client.js"; window.metal = metal; document.title = "ready";</script>';
    pages = http.createServer((req, res) => {
      if (req.url === "/client.js") res.writeHead(200, { "content-type": "text/javascript" }).end(js);
      else res.writeHead(200, { "content-type": "text/html" }).end(html);
    });
    await new Promise<void>((r) => pages.listen(0, "127.0.0.1", r));
    origin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
    server = await startTestServer({ env: { METAL_CORS_ORIGINS: origin } });
    browser = await launchChromium();
    page = await browser.newPage();
    page.on("request", (r) => {
      if (r.url().startsWith(server.url) && r.method() === "POST") wires.push(r.headers()["content-type"] ?? "");
    });
    await page.goto(origin);
    await page.waitForFunction("document.title === 'ready'");
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => pages?.close(r));
  });

  /** Runs `body` in the page with `metal` (the entry's exports), `url` and `token` in scope; returns its result. */
  const inPage = <T>(body: string): Promise<T> => page.evaluate(`(async (metal, url, token) => { ${body} })(window.metal, ${JSON.stringify(server.url)}, ${JSON.stringify(server.adminToken)})`) as Promise<T>;

  it.each(["grpc-web", "connect"])("%s: writes, reads, a server stream, and errors with their codes", async (protocol) => {
    wires.length = 0;
    const id = `browser-${protocol}`;
    const result = await inPage<{ listed: string[]; watched: string; missing: [boolean, number]; anonymous: number }>(`
      const c = metal.createMetalClient({ baseUrl: url, tokenProvider: () => token, protocol: ${JSON.stringify(protocol)} });
      await c.admin.partition.create({ id: ${JSON.stringify(id)} });
      const listed = (await c.api.partition.list({})).partitions.map((p) => p.id);
      let watched = "";
      for await (const m of c.admin.machine.watch({})) { watched = m.message.case; break; }
      const missing = await c.api.partition.get({ id: "nope" }).catch((e) => [e instanceof metal.ConnectError, e.code]);
      const anonymous = await metal.createMetalClient({ baseUrl: url, protocol: ${JSON.stringify(protocol)} }).api.partition.list({}).catch((e) => e.code);
      return { listed, watched, missing, anonymous };
    `);
    expect(result.listed).toContain(id);
    expect(result.watched).toBe("snapshotDone");
    expect(result.missing).toEqual([true, 5]); // Code.NotFound
    expect(result.anonymous).toBe(16); // Code.Unauthenticated
    // Connect sends unary calls as application/json and streams as application/connect+json.
    expect(new Set(wires)).toEqual(new Set(protocol === "grpc-web" ? ["application/grpc-web+proto"] : ["application/json", "application/connect+json"]));
  });
});
