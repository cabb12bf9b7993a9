import { report } from "./harness.js";
import { benchLabStart, benchStartup } from "./startup.js";

/** `npx tsx test/bench/startup-only.ts`: just the start-up rows of `npm run bench` (metal-api first and second start, the lab's first start). */
report([...(await benchStartup()), ...(await benchLabStart())]);
