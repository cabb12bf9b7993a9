import { benchConsole } from "./console.js";
import { report } from "./harness.js";

/** `npx tsx test/bench/console-only.ts`: just the console rows of `npm run bench` (50 SSH sessions in the lab). */
report(await benchConsole());
