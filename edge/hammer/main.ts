import { jsonLog } from "../common/log.js";
import { connectThroughCores, describeHammerSettings, type HammerConfig, loadHammerConfig } from "./config.js";
import { MetalHammer } from "./hammer.js";
import { platformHardware } from "./platform.js";

const USAGE = "metal-hammer: registers the machine, waits for its allocation and installs it, reaching the control plane through its leaves' metal-cores";

/**
 * The metal-hammer binary on the machine it runs on: one run of the agent,
 * ending when the machine kexecs into its installed OS (exit 0) or on
 * SIGINT/SIGTERM. Without a hardware adapter for the platform it refuses to
 * start; `metal-hammer --simulated` runs edge/sim/hammer-main.ts instead.
 */
export async function runMetalHammer(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`${USAGE}\n\n${describeHammerSettings()}\n\n  --simulated  (or METAL_HAMMER_SIMULATED=1) a simulated machine instead of this one; see --simulated --help\n`);
    return 0;
  }
  let config: HammerConfig;
  try {
    config = loadHammerConfig(process.env, argv);
  } catch (err) {
    process.stderr.write(`metal-hammer: ${(err as Error).message}\n`);
    return 2;
  }
  const hardware = platformHardware();
  if (!hardware) {
    process.stderr.write(`metal-hammer: no hardware adapter for this platform yet (${process.platform}); run it with --simulated for a simulated machine\n`);
    return 1;
  }
  const stop = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());
  const { credential, transport } = connectThroughCores(config.boot, jsonLog);
  const hammer = new MetalHammer({ transport, credential, partition: config.boot.partition, hardware, version: "0.1.0", timing: config.timing, log: jsonLog });
  jsonLog("metal-hammer starting", { machine: config.boot.machineId, partition: config.boot.partition, cores: config.boot.cores });
  const outcome = await hammer.run(stop.signal);
  jsonLog(`metal-hammer run ended: ${outcome}`);
  return 0;
}
