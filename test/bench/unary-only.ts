import { report } from "./harness.js";
import { benchUnary } from "./unary.js";

/** `npx tsx test/bench/unary-only.ts`: just the unary read rows of `npm run bench`, with each server's CPU time per call. */
const comparisons = await benchUnary();
report(comparisons);
console.table(comparisons.map((c) => ({ what: c.what, ...c.extra })));
