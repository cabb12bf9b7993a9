import { report } from "./harness.js";
import { benchIpam } from "./ipam.js";

/** `npx tsx test/bench/ipam-only.ts`: just the IPAM rows of `npm run bench`. */
report(await benchIpam());
