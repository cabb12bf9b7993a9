import { createTransport } from "../../client/transport.js";
import { jsonLog } from "../common/log.js";
import { BmcAgent } from "./agent.js";
import { type BmcConfig, describeBmcSettings, loadBmcConfig } from "./config.js";
import { IpmiAdapter } from "./ipmi.js";
import { IpmiSolConsoles } from "./ipmi-sol.js";

/** The metal-bmc binary: the agent on real BMCs through ipmitool, until SIGINT/SIGTERM. */
export async function runMetalBmc(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`metal-bmc: discovers BMCs from DHCP leases, reports them, runs BMC commands and relays serial consoles (IPMI SOL)\n\n${describeBmcSettings()}\n`);
    return 0;
  }
  let config: BmcConfig;
  try {
    config = loadBmcConfig(process.env, argv);
  } catch (err) {
    process.stderr.write(`metal-bmc: ${(err as Error).message}\n`);
    return 2;
  }
  const transport = createTransport({ baseUrl: config.apiUrl, token: config.token });
  const log = jsonLog;
  const agent = new BmcAgent({
    transport,
    partition: config.partition,
    agent: config.agent,
    version: "0.1.0",
    leaseFile: config.leaseFile,
    stateDir: config.stateDir,
    adapter: new IpmiAdapter(undefined, "ipmitool", { cipherSuite: config.cipherSuite }),
    console: new IpmiSolConsoles({ cipherSuite: config.cipherSuite }),
    credentials: config.ipmi,
    filter: { allowedCidrs: config.allowedCidrs, ignoreMacs: config.ignoreMacs },
    timing: config.timing,
    log,
  });
  const stop = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());
  log("metal-bmc starting", { api: config.apiUrl, partition: config.partition, agent: config.agent, leaseFile: config.leaseFile });
  await agent.run(stop.signal);
  return 0;
}
