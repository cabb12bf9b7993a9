import { report } from "./harness.js";
import { benchWaitStreams } from "./wait-streams.js";

/** `npx tsx test/bench/wait-only.ts`: just the Wait stream rows of `npm run bench`. */
report(await benchWaitStreams());
