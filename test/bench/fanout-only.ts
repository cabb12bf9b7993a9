import { report } from "./harness.js";
import { benchSwitchFanout } from "./switch-fanout.js";

/** `npx tsx test/bench/fanout-only.ts`: just the switch fan-out row of `npm run bench`. */
report(await benchSwitchFanout());
