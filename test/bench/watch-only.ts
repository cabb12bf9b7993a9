import { report } from "./harness.js";
import { benchWatchFanout } from "./watch-fanout.js";

/** `npx tsx test/bench/watch-only.ts`: just the Watch fan-out rows of `npm run bench` (issue 15). */
report(await benchWatchFanout());
