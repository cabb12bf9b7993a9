import { report } from "./harness.js";
import { benchMetalctl } from "./metalctl.js";

/** `npx tsx test/bench/metalctl-only.ts`: just the metalctl rows of `npm run bench`. */
report(await benchMetalctl());
