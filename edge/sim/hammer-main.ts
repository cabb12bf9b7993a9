import { readSettings } from "../../client/settings.js";
import { jsonLog } from "../common/log.js";
import { connectThroughCores, describeHammerSettings, HAMMER_SETTINGS, type HammerConfig, hammerConfigFrom } from "../hammer/config.js";
import { MetalHammer } from "../hammer/hammer.js";
import { SimMachine, type SimMachineSpec } from "./machine.js";

/** The simulated machine's settings, on top of the hammer's own. */
const SIM_SETTINGS = {
  ...HAMMER_SETTINGS,
  simUuid: { env: "METAL_HAMMER_SIM_UUID", flag: "sim-uuid", fallback: "" },
  simDisks: { env: "METAL_HAMMER_SIM_DISKS", flag: "sim-disks", fallback: "/dev/sda=240000000000" },
  simNics: { env: "METAL_HAMMER_SIM_NICS", flag: "sim-nics", fallback: "" },
} as const;

const SIM_HELP =
  "  --sim-uuid   uuid                       the simulated machine's UUID (default: the boot parameters' metal.machine, which it must equal)" +
  "\n  --sim-disks  name=bytes,...            e.g. /dev/sda=240000000000,/dev/sdb=960000000000" +
  "\n  --sim-nics   name=mac@switch/port,...   e.g. eth0=0c:c4:7a:00:00:01@leaf01/swp1,eth1=0c:c4:7a:00:00:02@leaf02/swp1\n";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface SimHammerConfig extends HammerConfig {
  sim: SimMachineSpec;
}

/** Flags win over the environment; throws with a message fit for the user on anything missing or malformed. */
export function loadSimHammerConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): SimHammerConfig {
  const r = readSettings(SIM_SETTINGS, env, argv);
  const common = hammerConfigFrom(r);
  const uuid = (r.get("simUuid") || common.boot.machineId).toLowerCase();
  if (!UUID.test(uuid)) throw new Error("--sim-uuid must be the simulated machine's UUID");
  // The credential is bound to the machine: a simulated machine of another UUID could do nothing with it.
  if (uuid !== common.boot.machineId) throw new Error(`--sim-uuid ${uuid} is not the machine of the boot parameters (metal.machine=${common.boot.machineId})`);
  const disks = r.list("simDisks").map((d) => {
    const m = /^(\/dev\/\S+)=(\d+)$/.exec(d);
    if (!m) throw new Error(`--sim-disks: "${d}" is not name=bytes`);
    return { name: m[1]!, sizeBytes: BigInt(m[2]!) };
  });
  const nics = r.list("simNics").map((n) => {
    const m = /^([\w.-]+)=((?:[0-9a-f]{2}:){5}[0-9a-f]{2})(?:@([\w.-]+)\/([\w./-]+))?$/i.exec(n);
    if (!m) throw new Error(`--sim-nics: "${n}" is not name=mac@switch/port`);
    return { name: m[1]!, mac: m[2]!.toLowerCase(), neighbors: m[3] ? [{ hostname: m[3], port: m[4]! }] : [] };
  });
  if (nics.length === 0) throw new Error("--sim-nics: the machine needs at least one NIC");
  return { ...common, sim: { uuid, disks, nics } };
}

/**
 * `metal-hammer --simulated`: the real agent on one simulated machine that
 * PXE-boots into it, ending when the machine kexecs into its installed OS
 * (exit 0) or on SIGINT/SIGTERM. A crash reboots the machine into the hammer
 * again, as on real hardware.
 */
export async function runSimulatedHammer(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help")) {
    process.stdout.write(`metal-hammer --simulated: the metal-hammer agent on one simulated machine\n\n${describeHammerSettings()}\n${SIM_HELP}`);
    return 0;
  }
  let config: SimHammerConfig;
  try {
    config = loadSimHammerConfig(process.env, argv);
  } catch (err) {
    process.stderr.write(`metal-hammer: ${(err as Error).message}\n`);
    return 2;
  }
  const log = jsonLog;
  // One credential for every boot of the process (a real machine gets a fresh one from pixie on each PXE boot).
  const { credential, transport } = connectThroughCores(config.boot, log);
  const stop = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());
  let resolve: (os: string) => void = () => {};
  const osUp = new Promise<string>((r) => (resolve = r));
  const machine = new SimMachine(config.sim, {
    pxeBoot: (m, signal) => {
      const hammer = new MetalHammer({ transport, credential, partition: config.boot.partition, hardware: m, version: "0.1.0", timing: config.timing, log });
      void hammer.run(AbortSignal.any([signal, stop.signal])).then((outcome) => log(`metal-hammer run ended: ${outcome}`));
    },
    osBooted: (_m, os) => resolve(`${os.image} on ${os.hostname}`),
  });
  log("metal-hammer starting", { machine: machine.uuid, partition: config.boot.partition, cores: config.boot.cores, hardware: "simulated" });
  machine.powerOn("pxe");
  const stopped = new Promise<void>((r) => stop.signal.addEventListener("abort", () => r(), { once: true }));
  const os = await Promise.race([osUp, stopped]);
  if (os) log("installed OS booted", { os });
  await machine.dispose();
  return 0;
}
