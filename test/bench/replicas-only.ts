import { report } from "./harness.js";
import { benchReplicas } from "./replicas.js";

/** `npx tsx test/bench/replicas-only.ts`: just the replica rows of `npm run bench` (issue 15). */
report(await benchReplicas());
