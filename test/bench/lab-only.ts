import { report } from "./harness.js";
import { benchLabBoot } from "./lab.js";

/** `npx tsx test/bench/lab-only.ts`: just the 200-machine lab boot row of `npm run bench`. */
report(await benchLabBoot());
