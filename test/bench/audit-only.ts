import { benchAudit } from "./audit.js";
import { report } from "./harness.js";

/** `npx tsx test/bench/audit-only.ts`: just the audit row of `npm run bench`. */
report(await benchAudit());
