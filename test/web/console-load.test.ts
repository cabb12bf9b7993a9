import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S1_HARDWARE_JSON, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { buildConsoleOnce, haveChromium, launchChromium, SKIP_REASON } from "./browser.js";
import { measureConsoleLoad } from "./console-load.js";

const MACHINES = 1000;

/** `n` machines written straight into the database: every other one allocated with a full event log, some with status markers. */
async function seedMachines(server: TestServer, n: number): Promise<void> {
  const now = Date.now();
  const events = JSON.stringify(
    ["PXE Booting", "Preparing", "Registering", "Waiting", "Installing", "Booting New Kernel", "Phoned Home"].reverse().map((type, i) => ({ type, message: "", time: new Date(now - i * 60_000).toISOString() })),
  );
  const allocation = (i: number) => ({
    uuid: randomUUID(),
    project: "console-load",
    name: `m${i}`,
    description: "",
    hostname: `host-${i}`,
    role: "machine",
    image: "debian-12.0.20250101",
    filesystemLayout: "s1-default",
    sshKeys: [],
    userData: "",
    asn: 4200000000 + i,
    networks: [{ network: "net", ips: [`10.1.${i >> 8}.${i & 255}`], vrf: 30, primary: true }],
    createdAt: new Date(now - 86_400_000).toISOString(),
    createdBy: "test",
    succeeded: true,
  });
  const rows = Array.from({ length: n }, (_, i) => ({ id: randomUUID(), rack: i % 2 ? "r1" : "r2", allocation: i % 2 ? allocation(i) : null, state: i % 50 === 0 ? "locked" : "available" }));
  await server.app.db.execute(sql`
    insert into machines (id, partition_id, size_id, rack_id, hardware, allocation, project, state)
    select r->>'id', 'p1', 's1', r->>'rack', ${S1_HARDWARE_JSON}::jsonb, (r->>'allocation')::jsonb, (r->>'allocation')::jsonb->>'project', r->>'state'
    from jsonb_array_elements(${JSON.stringify(rows)}::jsonb) r`);
  await server.app.db.execute(sql`
    insert into machine_events (machine_id, liveliness, events, last_event_time)
    select jsonb_array_elements_text(${JSON.stringify(rows.map((r) => r.id))}::jsonb), 'Alive', ${events}::jsonb, now()`);
}

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
    // Exactly index.html and its hashed assets, each as small as gzip makes it (not the raw bundle).
    const built = new Map(build.files.map((f) => [f.name === "index.html" ? "/" : `/ui/${f.name}`, f]));
    expect(new Set(load.files.map((f) => f.path))).toEqual(new Set(built.keys()));
    for (const f of load.files) expect(f.bytes, f.path).toBeLessThan(built.get(f.path)!.bytes);
    expect(load.firstLoadGzipBytes).toBeLessThan(300 * 1024);
    // The numbers, for the report and the bench; a busy machine decides them, so they are printed, not asserted.
    console.log(
      `web console first load: ${(load.firstLoadGzipBytes / 1024).toFixed(1)} KiB gzip; ${MACHINES}-machine table shown after ${load.tableShownMs.toFixed(0)} ms (snapshot complete at ${load.snapshotMs.toFixed(0)} ms)`,
    );
  });
});
