import { daemonTransport, jsonLog } from "../common/client.js";
import { SimMachine } from "../sim/machine.js";
import { describeHammerSettings, loadHammerConfig } from "./config.js";
import { MetalHammer } from "./hammer.js";

/**
 * The metal-hammer binary. Real hardware needs the Linux adapter, which does
 * not exist yet; until then it runs the agent on one simulated machine that
 * PXE-boots into it, and ends when the machine kexecs into its installed OS
 * (exit 0) or on SIGINT/SIGTERM. A crash reboots the machine into the hammer
 * again, as on real hardware.
 */
export async function runMetalHammer(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`metal-hammer: registers the machine, waits for its allocation and installs it\n\n${describeHammerSettings()}`);
    return 0;
  }
  let config;
  try {
    config = loadHammerConfig(process.env, argv);
  } catch (err) {
    process.stderr.write(`metal-hammer: ${(err as Error).message}\n`);
    return 2;
  }
  const transport = daemonTransport(config.apiUrl, config.token);
  const log = jsonLog;
  const stop = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());
  let resolve: (os: string) => void = () => {};
  const osUp = new Promise<string>((r) => (resolve = r));
  const machine = new SimMachine(config.sim, {
    pxeBoot: (m, signal) => {
      const hammer = new MetalHammer({ transport, partition: config.partition, hardware: m, version: "0.1.0", timing: config.timing, log });
      void hammer.run(AbortSignal.any([signal, stop.signal])).then((outcome) => log(`metal-hammer run ended: ${outcome}`));
    },
    osBooted: (_m, os) => resolve(`${os.image} on ${os.hostname}`),
  });
  log("metal-hammer starting", { api: config.apiUrl, partition: config.partition, machine: machine.uuid, hardware: config.hardware });
  machine.powerOn("pxe");
  const stopped = new Promise<void>((r) => stop.signal.addEventListener("abort", () => r(), { once: true }));
  const os = await Promise.race([osUp, stopped]);
  if (os) log("installed OS booted", { os });
  await machine.dispose();
  return 0;
}
