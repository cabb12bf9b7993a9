import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthService } from "../../gen/metal/api/v1/health_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { WEB_CONSOLE_CSP } from "../../server/http/web-console.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/** A built console in miniature: index.html and two hashed assets, plus a file outside assets/ that must never be served. */
function fakeBuild(): string {
  const dir = mkdtempSync(join(tmpdir(), "metal-web-test-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), '<!doctype html><script type="module" src="/ui/assets/app-ABC123.js"></script><div id="root"></div>');
  writeFileSync(join(dir, "assets", "app-ABC123.js"), `console.log(${JSON.stringify("x".repeat(4000))});`);
  writeFileSync(join(dir, "assets", "app-DEF456.css"), "body{margin:0}");
  writeFileSync(join(dir, "secret.txt"), "never served");
  return dir;
}

/** A raw GET, so paths reach the server exactly as written (fetch would normalize "/../"). */
function rawGet(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method: "GET", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("metal-api serves the built web console on its own port", () => {
  let dir: string;
  let server: TestServer;
  beforeAll(async () => {
    dir = fakeBuild();
    server = await startTestServer({ env: { METAL_WEB_DIR: dir } });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("answers / and /ui/... with index.html under a strict CSP, never cached", async () => {
    for (const path of ["/", "/ui", "/ui/", "/ui/machines", "/?x=1"]) {
      const res = await rawGet(server.url, path);
      expect(res.status, path).toBe(200);
      expect(res.body.toString()).toContain('<div id="root">');
      expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(res.headers["cache-control"]).toBe("no-cache");
      expect(res.headers["content-security-policy"]).toBe(WEB_CONSOLE_CSP);
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect(res.headers["referrer-policy"]).toBe("no-referrer");
    }
    const csp = WEB_CONSOLE_CSP.split(";").map((d) => d.trim());
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(WEB_CONSOLE_CSP).not.toContain("unsafe-inline");
    expect(WEB_CONSOLE_CSP).not.toContain("unsafe-eval");
  });

  it("serves hashed assets gzip'd to clients that accept it, cached for a year, with their type", async () => {
    const plain = await rawGet(server.url, "/ui/assets/app-ABC123.js");
    expect(plain.status).toBe(200);
    expect(plain.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    const gz = await rawGet(server.url, "/ui/assets/app-ABC123.js", { "accept-encoding": "gzip, deflate, br" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gz.headers.vary).toBe("accept-encoding");
    expect(gz.body.length).toBeLessThan(plain.body.length / 10);
    expect(gunzipSync(gz.body).equals(plain.body)).toBe(true);
    expect((await rawGet(server.url, "/ui/assets/app-DEF456.css")).headers["content-type"]).toBe("text/css; charset=utf-8");
  });

  it("never reaches outside the built files: traversal, encoded traversal and unknown names are 404", async () => {
    for (const path of [
      "/ui/assets/../secret.txt",
      "/ui/assets/..%2fsecret.txt",
      "/ui/assets/%2e%2e/secret.txt",
      "/ui/assets/%2e%2e%2f%2e%2e%2fpackage.json",
      "/ui/assets/..\\secret.txt",
      "/ui/assets/../../package.json",
      "/ui/assets/",
      "/ui/assets/app-OLD.js",
      "/ui/assets/secret.txt",
      "/ui/assets//etc/passwd",
    ]) {
      const res = await rawGet(server.url, path);
      expect(res.status, path).toBe(404);
      expect(res.body.toString(), path).not.toContain("never served");
      expect(res.headers["cache-control"], path).toBe("no-store");
    }
    // "/ui/../secret.txt" is a page route at most (index.html), never the file.
    const page = await rawGet(server.url, "/ui/../secret.txt");
    expect(page.body.toString()).not.toContain("never served");
  });

  it("leaves the RPC paths, /metrics and everything else where they were", async () => {
    // Connect (HTTP/1.1 JSON) and gRPC (h2c) calls are answered by the API, not by the console.
    expect((await server.client(HealthService).get({})).services.length).toBeGreaterThan(0);
    expect((await server.grpcClient(PartitionService, server.adminToken).list({})).partitions).toEqual([]);
    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain("# HELP");
    // An unknown RPC path or any other path is the API's 404, not index.html.
    for (const path of ["/metal.api.v1.NoSuchService/Get", "/grpc.health.v1.Health/Nope", "/masterdata.v1.ProjectService/Nope", "/index.html", "/assets/app-ABC123.js", "/uix"]) {
      const res = await rawGet(server.url, path);
      expect(res.body.toString(), path).not.toContain('<div id="root">');
    }
    // Only GET and HEAD: a POST to "/" is not a way to the console.
    expect((await fetch(`${server.url}/`, { method: "POST" })).status).toBe(404);
    expect((await fetch(`${server.url}/`, { method: "HEAD" })).status).toBe(200);
  });
});

describe("without a built console", () => {
  it("keeps the home page at / and says how to build the console; /ui is 404", async () => {
    const server = await startTestServer({ env: { METAL_WEB_DIR: join(tmpdir(), "metal-web-never-built") } });
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("npm run build:web");
    expect((await fetch(`${server.url}/ui/machines`)).status).toBe(404);
  });
});
