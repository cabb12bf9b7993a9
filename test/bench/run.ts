import { benchAllocation } from "./allocation.js";
import { benchAudit } from "./audit.js";
import { benchConsole } from "./console.js";
import { type Comparison, report } from "./harness.js";
import { benchIpam } from "./ipam.js";
import { benchLabBoot } from "./lab.js";
import { benchMetalctl } from "./metalctl.js";
import { benchPartitionBoundary } from "./partition-boundary.js";
import { benchReplicas } from "./replicas.js";
import { benchSignIn } from "./signin.js";
import { benchLabStart, benchStartup } from "./startup.js";
import { benchSwitchFanout } from "./switch-fanout.js";
import { benchUnary } from "./unary.js";
import { benchVmBoot } from "./vm-boot.js";
import { benchWaitStreams } from "./wait-streams.js";
import { benchWatchFanout } from "./watch-fanout.js";
import { benchWebConsole } from "./web-console.js";

/**
 * Benchmarks against local PostgreSQL. Each result is printed beside a raw
 * baseline measured in the same run: the same number of round trips of the
 * most trivial equivalent (here: a primary-key SELECT through pg).
 */
async function main() {
  const comparisons: Comparison[] = [];
  comparisons.push(...(await benchUnary()));
  comparisons.push(...(await benchIpam()));
  comparisons.push(...(await benchAllocation()));
  comparisons.push(...(await benchAudit()));
  comparisons.push(...(await benchSignIn()));
  comparisons.push(...(await benchWaitStreams()));
  comparisons.push(...(await benchReplicas()));
  comparisons.push(...(await benchPartitionBoundary()));
  comparisons.push(...(await benchWatchFanout()));
  comparisons.push(...(await benchSwitchFanout()));
  comparisons.push(...(await benchMetalctl()));
  comparisons.push(...(await benchLabBoot()));
  comparisons.push(...(await benchStartup()), ...(await benchLabStart()));
  comparisons.push(...(await benchConsole()));
  comparisons.push(...(await benchWebConsole()));
  comparisons.push(...(await benchVmBoot()));
  report(comparisons);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
