/**
 * Prints the console's first-load numbers, run by run, for comparing
 * changes to the console (`npx tsx test/web/load-timings.ts [runs]`):
 * navigation start until the Watch snapshot is complete and until the
 * 1,000-machine table is painted. `npm run bench` reports the same as p50/p99.
 */
import { setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer } from "../helpers/server-launch.js";
import { buildConsoleOnce, haveChromium, launchChromium, SKIP_REASON } from "./browser.js";
import { measureConsoleLoad, seedMachines } from "./console-load.js";

const MACHINES = 1000;
const RUNS = Number(process.argv[2] ?? 5);

if (!haveChromium) {
  console.log(SKIP_REASON);
} else {
  const build = await buildConsoleOnce();
  const { server, stop } = await launchServer({ env: { METAL_WEB_DIR: build.outDir } });
  const browser = await launchChromium();
  try {
    await setUpPartition(server);
    await seedMachines(server, MACHINES);
    // A warm-up visit: the first one also pays for a fresh server's cold queries.
    await measureConsoleLoad(browser, server.url, server.adminToken, MACHINES);
    for (let i = 0; i < RUNS; i++) {
      const load = await measureConsoleLoad(browser, server.url, server.adminToken, MACHINES);
      console.log(
        `run ${i + 1}: script ran ${load.scriptMs.toFixed(0)} ms, first Watch message ${load.firstMessageMs.toFixed(0)} ms, snapshot complete ${load.snapshotMs.toFixed(0)} ms, table shown ${load.tableShownMs.toFixed(0)} ms, first load ${(load.firstLoadGzipBytes / 1024).toFixed(1)} KiB gzip`,
      );
    }
  } finally {
    await browser.close();
    await stop();
  }
}
