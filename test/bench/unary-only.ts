import { report } from "./harness.js";
import { benchUnary } from "./unary.js";

/** `npx tsx test/bench/unary-only.ts`: just the unary read rows of `npm run bench`. */
report(await benchUnary());
