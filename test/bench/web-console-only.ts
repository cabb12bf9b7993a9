import { report } from "./harness.js";
import { benchWebConsole } from "./web-console.js";

/** `npx tsx test/bench/web-console-only.ts`: just the web console row of `npm run bench` (Debian's Chromium). */
report(await benchWebConsole());
