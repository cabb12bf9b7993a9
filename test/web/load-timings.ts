/**
 * Prints the console's first-load numbers, run by run, for comparing
 * changes to the console (`npx tsx test/web/load-timings.ts [runs] [OLD_BUILD_DIR]`):
 * navigation start until the script ran, the first Watch message, the
 * Watch snapshot complete, the frame that first shows the 1,000-machine
 * table and the table painted. Builds before 2026-12-05 20:15 UTC mark only
 * the frame (as their "shown"): builds are compared by the frame.
 * With OLD_BUILD_DIR (an older build: `npx tsx scripts/build-web.ts DIR` in a
 * checkout of an older commit), it is served by a second server with the same
 * machines and the runs alternate between the two, so a busy machine's
 * load falls on both alike. `npm run bench` reports the same as p50/p99.
 */
import type { Browser } from "playwright-core";
import { setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer } from "../helpers/server-launch.js";
import { buildConsoleOnce, haveChromium, launchChromium, SKIP_REASON } from "./browser.js";
import { type ConsoleLoad, measureConsoleLoad, seedMachines } from "./console-load.js";

const MACHINES = 1000;
const RUNS = Number(process.argv[2] ?? 5);
const OLD_BUILD = process.argv[3];

async function serve(webDir: string) {
  const launched = await launchServer({ env: { METAL_WEB_DIR: webDir } });
  await setUpPartition(launched.server);
  await seedMachines(launched.server, MACHINES);
  return launched;
}

/**
 * The moment both an older build and this one mark: the frame that first shows the table, before its style,
 * layout and paint (older builds called it "shown"; this one marks that as "frame" and "shown" once painted).
 */
const frameOf = (l: ConsoleLoad) => l.tableFrameMs ?? l.tableShownMs;

const line = (l: ConsoleLoad) =>
  `script ran ${l.scriptMs.toFixed(0)} ms, first Watch message ${l.firstMessageMs.toFixed(0)} ms, snapshot complete ${l.snapshotMs.toFixed(0)} ms, table's frame ${frameOf(l).toFixed(0)} ms, ${l.tableFrameMs === undefined ? "(no painted mark: an older build)" : `table painted ${l.tableShownMs.toFixed(0)} ms`}, first load ${(l.firstLoadGzipBytes / 1024).toFixed(1)} KiB gzip${l.earlyWatchAdopted ? ", early Watch adopted" : ""}`;

const range = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[0]!.toFixed(0)}–${s[s.length - 1]!.toFixed(0)} ms, median ${s[Math.floor(s.length / 2)]!.toFixed(0)} ms`;
};

if (!haveChromium) {
  console.log(SKIP_REASON);
} else {
  const build = await buildConsoleOnce();
  const servers = [{ name: "new", ...(await serve(build.outDir)), frame: [] as number[], shown: [] as number[] }];
  if (OLD_BUILD) servers.push({ name: "old", ...(await serve(OLD_BUILD)), frame: [], shown: [] });
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    // A warm-up visit: the first one also pays for a fresh server's cold queries.
    for (const s of servers) await measureConsoleLoad(browser, s.server.url, s.server.adminToken, MACHINES);
    for (let i = 0; i < RUNS; i++) {
      for (const s of i % 2 ? [...servers].reverse() : servers) {
        const load = await measureConsoleLoad(browser, s.server.url, s.server.adminToken, MACHINES);
        s.frame.push(frameOf(load));
        if (load.tableFrameMs !== undefined) s.shown.push(load.tableShownMs);
        console.log(`run ${i + 1} ${s.name}: ${line(load)}`);
      }
    }
    for (const s of servers) {
      console.log(`${s.name}: table's frame ${range(s.frame)} (${RUNS} runs)${s.shown.length > 0 ? `; table painted ${range(s.shown)}` : ""}`);
    }
  } finally {
    await browser?.close();
    for (const s of servers) await s.stop();
  }
}
