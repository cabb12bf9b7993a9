/**
 * The console's first load as a person opening it sees it, for `npm run
 * bench` (DESIGN.md §7: < 300 KiB gzip; 1,000-machine table < 500 ms in
 * Chromium on localhost). A fresh browser context (empty cache) with the
 * tab's sessionStorage as the console left it after signing in (a reload)
 * opens the console; the page marks when
 * the Watch snapshot is complete and when the full table is painted
 * (web/pages/machines.tsx: after the browser styled, laid out and painted
 * the frame that first shows it).
 */
import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Browser } from "playwright-core";
import { S1_HARDWARE_JSON } from "../helpers/partition-fixture.js";
import type { TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";
import type { PageGlobals } from "./browser.js";

export interface ConsoleLoad {
  /** Bytes on the wire (gzip) of index.html and everything it pulls: scripts, styles. API calls are not counted. */
  readonly firstLoadGzipBytes: number;
  /** The files counted, with their wire bytes. */
  readonly files: readonly { path: string; bytes: number }[];
  /** From navigation start until the machine table is painted with all its rows (the browser's style, layout and paint of its frame done). */
  readonly tableShownMs: number;
  /**
   * From navigation start until the frame that shows the full table begins, before its style, layout and paint:
   * what tableShownMs measured until 2026-12-05 (builds before then mark only this, as their "shown").
   */
  readonly tableFrameMs: number | undefined;
  /** From navigation start until the Watch snapshot was complete (the rest of tableShownMs is rendering). */
  readonly snapshotMs: number;
  /** From navigation start until the first message of the Watch arrived (snapshotMs minus this is the snapshot streaming in). */
  readonly firstMessageMs: number;
  /** From navigation start until the console's script ran (index.html and the bundle fetched, parsed and evaluated); its calls start then. */
  readonly scriptMs: number;
  readonly rows: number;
  /** The Watch web/early-watch.ts sent before the app ran was the one the app used (its head start worked). */
  readonly earlyWatchAdopted: boolean;
  /** index.html and each file it pulls, from navigation start: when it was asked for, sent, its first byte and its end. */
  readonly fetchedMs: readonly { path: string; asked: number; sent: number; first: number; ms: number }[];
}

export async function measureConsoleLoad(browser: Browser, baseUrl: string, token: string, expectRows: number): Promise<ConsoleLoad> {
  const kept = await keptTab(browser, baseUrl, token);
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
  try {
    // Signed in already, as after a reload of the tab: what is measured is loading the console and its table.
    await context.addInitScript((entries) => {
      for (const [k, v] of entries) (globalThis as unknown as PageGlobals).sessionStorage.setItem(k, v);
    }, kept);
    const page = await context.newPage();
    const files: { path: string; bytes: number }[] = [];
    page.on("response", (res) => {
      const req = res.request();
      if (req.method() !== "GET" || !res.url().startsWith(baseUrl)) return;
      // content-length is what crossed the wire: the server sends the gzip'd body to Chromium.
      files.push({ path: new URL(res.url()).pathname, bytes: Number(res.headers()["content-length"] ?? 0) });
    });
    await page.goto(`${baseUrl}/`);
    const marks = await page.waitForFunction(
      () => {
        const g = globalThis as unknown as PageGlobals;
        const shown = g.performance.getEntriesByName("metal:machines-shown")[0];
        const snapshot = g.performance.getEntriesByName("metal:machines-snapshot")[0];
        const script = g.performance.getEntriesByName("metal:script-run")[0];
        const first = g.performance.getEntriesByName("metal:machines-first-message")[0];
        const frame = g.performance.getEntriesByName("metal:machines-frame")[0];
        return shown && snapshot && script && first
          ? {
              shown: shown.startTime,
              frame: frame?.startTime,
              snapshot: snapshot.startTime,
              script: script.startTime,
              first: first.startTime,
              rows: g.document.querySelectorAll("table.machines tbody tr").length,
              adopted: g.performance.getEntriesByName("metal:early-watch-adopted").length > 0,
              fetched: (["navigation", "resource"] as const)
                .flatMap((type) => (g.performance as unknown as { getEntriesByType(t: string): PageResourceTiming[] }).getEntriesByType(type))
                .filter((e) => !e.name.includes("Service/"))
                .map((e) => ({ path: new URL(e.name).pathname, asked: e.startTime, sent: e.requestStart, first: e.responseStart, ms: e.responseEnd })),
            }
          : undefined;
      },
      undefined,
      { timeout: scaled(60_000) },
    );
    const { shown, frame, snapshot, script, first, rows, adopted, fetched } = (await marks.jsonValue())!;
    if (rows < expectRows) throw new Error(`the table showed ${rows} rows, expected ${expectRows}`);
    return {
      firstLoadGzipBytes: files.reduce((s, f) => s + f.bytes, 0),
      files,
      tableShownMs: shown,
      tableFrameMs: frame,
      snapshotMs: snapshot,
      scriptMs: script,
      firstMessageMs: first,
      rows,
      earlyWatchAdopted: adopted,
      fetchedMs: fetched,
    };
  } finally {
    await context.close();
  }
}

/** The fields of the browser's resource (and navigation) timing entries read here. */
interface PageResourceTiming {
  readonly name: string;
  readonly startTime: number;
  readonly requestStart: number;
  readonly responseStart: number;
  readonly responseEnd: number;
}

const keptTabs = new Map<string, Promise<[string, string][]>>();

/**
 * What the console keeps in a tab's sessionStorage once signed in with
 * `token` (the token, the session, the Watch it opened), from one sign-in
 * through the page, once per server and token: a reload starts from it.
 */
function keptTab(browser: Browser, baseUrl: string, token: string): Promise<[string, string][]> {
  const key = `${baseUrl} ${token}`;
  let kept = keptTabs.get(key);
  if (!kept) {
    kept = (async () => {
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        await page.goto(`${baseUrl}/`);
        await page.getByLabel("Token").fill(token);
        await page.getByRole("button", { name: "Sign in" }).click();
        await page.locator("table.machines").waitFor({ timeout: scaled(60_000) });
        return await page.evaluate(() => {
          const { sessionStorage } = globalThis as unknown as PageGlobals;
          return Array.from({ length: sessionStorage.length }, (_, i) => sessionStorage.key(i)!).map((k): [string, string] => [k, sessionStorage.getItem(k)!]);
        });
      } finally {
        await context.close();
      }
    })();
    keptTabs.set(key, kept);
  }
  return kept;
}

/** `n` machines of partition p1, size s1 (setUpPartition) written straight into the database: every other one allocated with a full event log, some with status markers. */
export async function seedMachines(server: TestServer, n: number): Promise<void> {
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
