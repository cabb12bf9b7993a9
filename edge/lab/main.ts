import { ConfigError, describeSettings, loadConfig } from "../../server/config.js";
import { createLogger } from "../../server/logger.js";
import { Lab } from "./lab.js";
import { LAB } from "./seed.js";

const USAGE = `metal-lab: the metal control plane plus a simulated partition (what npm start runs)

Lab flags:
  --machines N                 simulated machines (default 8)
  --lab-listen host:port       the lab's image and pixie server (default 127.0.0.1:8081)

Control plane flags (each also an environment variable):
${describeSettings()}
`;

/** Takes the lab's own flags out; the rest are the control plane's. */
function splitArgs(argv: string[]): { machines: number; labListen: string; rest: string[] } {
  let machines = 8;
  let labListen = "127.0.0.1:8081";
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [name, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (name !== "--machines" && name !== "--lab-listen") {
      rest.push(arg);
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(`flag "${name}" needs a value`);
    if (name === "--machines") {
      machines = Number(value);
      // One rack of two leaves: a switch registers at most 256 ports, two of them uplinks.
      if (!Number.isInteger(machines) || machines < 1 || machines > 250) throw new ConfigError(`--machines: "${value}" is not a number from 1 to 250 (one rack)`);
    } else {
      if (!/^.+:\d{1,5}$/.test(value)) throw new ConfigError(`--lab-listen: "${value}" is not host:port`);
      labListen = value;
    }
  }
  return { machines, labListen, rest };
}

function nextSteps(lab: Lab): string {
  const p = LAB.project;
  return `
metal-lab is up: control plane ${lab.apiUrl} (SSH console ${lab.consoleAddress}), ${lab.machines.length} simulated machines in partition "${LAB.partition}" (2 leaves, rack ${LAB.rack}).
${lab.adminTokenCreated ? `admin token (also in ${lab.opts.config.dataDir}/admin-token):\n${lab.adminToken}\n` : ""}${lab.metalctlConfig ? `metalctl contexts "lab" (current, operator) and "lab-project" (project ${p} by default) written to ${lab.metalctlConfig}\n` : ""}
Try:
  npx metalctl machine list                       # machines reach Waiting within seconds
  npx metalctl switch list
  npx metalctl network list --project ${p}
  npx metalctl machine create --project ${p} --partition ${LAB.partition} --size ${LAB.size} --image debian-12 \\
      --hostname web1 --networks ${lab.projectNetwork}
  npx metalctl firewall create --project ${p} --partition ${LAB.partition} --size ${LAB.size} --image firewall-ubuntu-3 \\
      --hostname fw1 --networks ${lab.projectNetwork} --networks ${LAB.internet}
  npx metalctl machine logs <id> --watch --until "phoned home"
  npx metalctl machine identify on <id>; npx metalctl machine commands <id>
  npx metalctl machine console <id>                # the serial console through metal-bmc (~. ends it)
  npx metalctl machine free <id>
Rendered switch configs: ${lab.dir}/switches/leaf01/etc/{frr/frr.conf,network/interfaces}
Ctrl-C stops everything; the next start reuses ${lab.opts.config.dataDir}.
`;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  let args: ReturnType<typeof splitArgs>;
  let config: ReturnType<typeof loadConfig>;
  try {
    args = splitArgs(argv);
    config = loadConfig(process.env, args.rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`metal-lab: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const lab = await Lab.start({ config, log, machines: args.machines, labListen: args.labListen });
  log.info({ url: lab.apiUrl, lab: lab.labUrl, machines: lab.machines.length, database: config.databaseUrl ? "postgres" : "embedded", dataDir: config.dataDir }, `metal-lab listening on ${lab.apiUrl}`);
  process.stdout.write(nextSteps(lab));
  await new Promise<string>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => resolve(sig));
  }).then((signal) => log.info({ signal }, "shutting down"));
  await lab.stop();
  log.info("stopped");
  log.flush();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`metal-lab: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
