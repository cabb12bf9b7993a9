import { benchAllocation } from "./allocation.js";
import { report } from "./harness.js";

/** `npx tsx test/bench/allocation-only.ts`: just the allocation rows of `npm run bench`. */
report(await benchAllocation());
