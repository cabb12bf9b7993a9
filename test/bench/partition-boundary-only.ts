import { report } from "./harness.js";
import { benchPartitionBoundary } from "./partition-boundary.js";

/** `npx tsx test/bench/partition-boundary-only.ts`: just the partition-boundary rows of `npm run bench` (issue 16). */
report(await benchPartitionBoundary());
