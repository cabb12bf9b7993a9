import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { buildConsoleOnce, haveChromium, launchChromium, SKIP_REASON } from "./browser.js";
import { measureConsoleLoad, seedMachines } from "./console-load.js";

const MACHINES = 1000;

describe.skipIf(!haveChromium)(`the console's first load with ${MACHINES} machines${haveChromium ? "" : ` (${SKIP_REASON})`}`, () => {
  let server: TestServer;
  let browser: Browser;
  beforeAll(async () => {
    const build = await buildConsoleOnce();
    server = await startTestServer({ env: { METAL_WEB_DIR: build.outDir } });
    await setUpPartition(server);
    await seedMachines(server, MACHINES);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("pulls only the built files, gzip'd, and shows every machine in the table", async () => {
    const build = await buildConsoleOnce();
    // The first run warms the server (a fresh process, cold queries); the second is what a person sees on any later visit with an empty cache.
    const cold = await measureConsoleLoad(browser, server.url, server.adminToken, MACHINES);
    const load = await measureConsoleLoad(browser, server.url, server.adminToken, MACHINES);
    console.log(`cold server: table shown after ${cold.tableShownMs.toFixed(0)} ms (snapshot ${cold.snapshotMs.toFixed(0)} ms)`);
    expect(load.rows).toBe(MACHINES);
    // The tab's Watch went out from web/early-watch.ts before the app ran, and the app used that one (no second Watch).
    expect(load.earlyWatchAdopted).toBe(true);
    // Exactly index.html and its first-load assets (not the lazily loaded serial console), each as small as gzip makes it.
    const built = new Map(build.files.filter((f) => build.firstLoad.includes(f.name)).map((f) => [f.name === "index.html" ? "/" : `/ui/${f.name}`, f]));
    expect(build.files.length).toBeGreaterThan(build.firstLoad.length);
    expect(new Set(load.files.map((f) => f.path))).toEqual(new Set(built.keys()));
    for (const f of load.files) expect(f.bytes, f.path).toBeLessThan(built.get(f.path)!.bytes);
    expect(load.firstLoadGzipBytes).toBeLessThan(300 * 1024);
    // The numbers, for the report and the bench; a busy machine decides them, so they are printed, not asserted.
    console.log(
      `web console first load: ${(load.firstLoadGzipBytes / 1024).toFixed(1)} KiB gzip; ${MACHINES}-machine table shown after ${load.tableShownMs.toFixed(0)} ms (snapshot complete at ${load.snapshotMs.toFixed(0)} ms)`,
    );
  });
});
