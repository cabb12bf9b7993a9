import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readVersion } from "../../server/version.js";
import { startTestServer } from "../helpers/test-server.js";

describe("the API address opened in a browser", () => {
  it("serves a small page that says what this is and links health and metrics, under a strict CSP; other paths stay 404", async () => {
    // A folder without a built console: the home page answers "/" even where `npm run build:web` has run.
    const server = await startTestServer({ env: { METAL_WEB_DIR: join(tmpdir(), "metal-no-web-console") } });
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain("bare-metal cloud control plane");
    expect(html).toContain(`version ${readVersion().version}`);
    expect(html).toContain('href="/metrics"');
    expect(html).toContain("metal.api.v1.HealthService/Get");
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain("npm run build:web");
    expect((await fetch(`${server.url}/`, { method: "HEAD" })).status).toBe(200);
    const missing = await fetch(`${server.url}/nothing-here`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe("not found\n");
    // The page is not a way around the API: a POST to "/" is not answered with it.
    expect((await fetch(`${server.url}/`, { method: "POST" })).status).toBe(404);
  });
});
