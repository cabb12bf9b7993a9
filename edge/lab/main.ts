import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { isAbsolute, relative } from "node:path";
import { ConfigError, describeSettings, loadConfig } from "../../server/config.js";
import type { Lab } from "./lab.js";
import { metalctlFinds, userMetalctlConfigPath } from "./metalctl-context.js";
import { LabStartError } from "./ports.js";

// The control plane, the daemons and the generated code load after the first line is printed (seconds under tsx): see main.

const USAGE = `metal-lab: the metal control plane plus a simulated partition (what npm start runs)

Lab flags (each also an environment variable):
  --machines N                 $METAL_LAB_MACHINES          simulated machines (default 8)
  --replicas N                 $METAL_LAB_REPLICAS          control-plane replicas (default 1); more than one runs each as a metal-api
                                                            process behind round-robin proxies on the API and console addresses,
                                                            needs DATABASE_URL and MASTERDATA_DATABASE_URL (PostgreSQL) and uses
                                                            MQTT_URL, or an MQTT broker embedded in the lab
  --lab-listen host:port       $METAL_LAB_LISTEN            the lab's image and pixie server (default 127.0.0.1:8081)
  --log-format pretty|json     $LOG_FORMAT                  logs on stdout (default: pretty on a terminal, else JSON)
  --metalctl-config FILE       $METAL_LAB_METALCTL_CONFIG   where the metalctl contexts go (default $METAL_DATA_DIR/metalctl/config.yaml)
  --reset-admin-token                                       revoke the bootstrap operator admin token and write a new one to $METAL_DATA_DIR/admin-token

Progress and what to try go to stderr, logs to stdout.

Control plane flags (each also an environment variable):
${describeSettings()}
`;

interface LabArgs {
  machines: number;
  replicas: number;
  labListen: string;
  logFormat: "pretty" | "json" | undefined;
  metalctlConfig: string | undefined;
  resetAdminToken: boolean;
  rest: string[];
}

/** Seconds of one start-up step without a word before the lab says it is still at it. */
const STILL_BUSY_S = 5;

/** Not a setting but an action, as in metal-api. */
const RESET_ADMIN_TOKEN = "--reset-admin-token";

const LAB_FLAGS = {
  "--machines": "METAL_LAB_MACHINES",
  "--replicas": "METAL_LAB_REPLICAS",
  "--lab-listen": "METAL_LAB_LISTEN",
  "--log-format": "LOG_FORMAT",
  "--metalctl-config": "METAL_LAB_METALCTL_CONFIG",
} as const;
type LabFlag = keyof typeof LAB_FLAGS;

/** Takes the lab's own flags (or their variables) out; the rest are the control plane's. */
function splitArgs(argv: string[], env: NodeJS.ProcessEnv): LabArgs {
  const given = new Map<LabFlag, string>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === RESET_ADMIN_TOKEN) continue;
    const [name, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (!(name in LAB_FLAGS)) {
      rest.push(arg);
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(`flag "${name}" needs a value`);
    given.set(name as LabFlag, value);
  }
  const read = (flag: LabFlag) => given.get(flag) ?? (env[LAB_FLAGS[flag]] || undefined);
  const machinesText = read("--machines") ?? "8";
  const machines = Number(machinesText);
  // One rack of two leaves: a switch registers at most 256 ports, two of them uplinks.
  if (!/^\d+$/.test(machinesText) || machines < 1 || machines > 250) throw new ConfigError(`--machines: "${machinesText}" is not a number from 1 to 250 (one rack)`);
  const replicasText = read("--replicas") ?? "1";
  const replicas = Number(replicasText);
  if (!/^\d+$/.test(replicasText) || replicas < 1 || replicas > 16) throw new ConfigError(`--replicas: "${replicasText}" is not a number from 1 to 16`);
  const labListen = read("--lab-listen") ?? "127.0.0.1:8081";
  if (!/^.+:\d{1,5}$/.test(labListen) || Number(labListen.slice(labListen.lastIndexOf(":") + 1)) > 65535) throw new ConfigError(`--lab-listen: "${labListen}" is not host:port`);
  const logFormat = read("--log-format");
  if (logFormat !== undefined && logFormat !== "pretty" && logFormat !== "json") throw new ConfigError(`--log-format: "${logFormat}" is neither pretty nor json`);
  return { machines, replicas, labListen, logFormat, metalctlConfig: read("--metalctl-config"), resetAdminToken: argv.includes(RESET_ADMIN_TOKEN), rest };
}

function prettyPrinterInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve("pino-pretty");
    return true;
  } catch {
    return false;
  }
}

/** A path as short as it can be said from here: relative inside the working directory. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

function banner(lab: Lab, args: LabArgs, LAB: typeof import("./seed.js").LAB): string {
  const p = LAB.project;
  const dataDir = lab.opts.config.dataDir;
  const lines = [
    "",
    `metal-lab is up: API ${lab.apiUrl}, SSH console ${lab.consoleAddress}, lab server ${lab.labUrl}; ${lab.machines.length} simulated machines in partition "${LAB.partition}" (2 leaves, rack ${LAB.rack}).`,
    `  operator admin token: ${shown(`${dataDir}/admin-token`)} (${lab.adminTokenCreated ? (args.resetAdminToken ? "issued anew, earlier ones revoked" : "created now") : "from an earlier start"}; never printed)`,
    `  console host key: ${lab.consoleFingerprint} (ED25519)${lab.knownHosts ? `, known_hosts entry in ${shown(lab.knownHosts)}` : ""}`,
  ];
  if (lab.replicas.length > 0) {
    lines.push(
      `  ${lab.replicas.length} replicas behind the lab's round-robin proxies (API ${lab.apiUrl}, SSH ${lab.consoleAddress}), MQTT broker ${lab.brokerAddress}${lab.opts.config.mqttUrl ? " (MQTT_URL)" : " (embedded)"}:`,
    );
    for (const r of lab.replicas) lines.push(`    ${r.id}: API ${r.url}, SSH ${r.consoleAddress}, pid ${r.pid ?? "-"}`);
  }
  if (lab.metalctlConfig) {
    lines.push(`  metalctl contexts in ${shown(lab.metalctlConfig)}: "lab" (operator admin) and "lab-project" (an editor of project ${p}, as a tenant is)`);
    if (!metalctlFinds(lab.metalctlConfig, process.env, process.cwd())) {
      const why = process.env.METALCTL_CONFIG
        ? "METALCTL_CONFIG names another file"
        : existsSync(userMetalctlConfigPath(process.env))
          ? `metalctl reads your ${userMetalctlConfigPath(process.env)}`
          : "metalctl looks in ./.metal (or $METAL_DATA_DIR)";
      lines.push(`  ${why}; for the lab's contexts: export METALCTL_CONFIG=${lab.metalctlConfig}`);
    }
  }
  if (lab.sshKey?.generated) {
    lines.push(
      `  no ~/.ssh/id_ed25519.pub, id_rsa.pub or id_dsa.pub: generated ${shown(lab.sshKey.generated)}; allocate with --sshpublickey @${shown(lab.sshKey.publicKey)}, open consoles with -i ${shown(lab.sshKey.generated)}`,
    );
  } else if (lab.sshKey) {
    lines.push(`  SSH key for allocations: ${lab.sshKey.publicKey} (metalctl machine create's default)`);
  }
  for (const id of lab.retired) lines.push(`  machine ${id} (beyond --machines) was free and is removed from the control plane; it returns when a start has room for it`);
  // With a generated key the commands carry it; the user's own default key needs no flag.
  const key = lab.sshKey?.generated ? { create: ` --sshpublickey @${shown(lab.sshKey.publicKey)}`, console: ` -i ${shown(lab.sshKey.generated)}` } : { create: "", console: "" };
  lines.push(
    "",
    "Try (README, Try it):",
    "  npx metalctl machine list                      # every machine; they reach Waiting within seconds",
    "  npx metalctl context use lab-project           # act as a member of the project from here on",
    `  npx metalctl machine create --partition ${LAB.partition} --size ${LAB.size} --image debian-12 --hostname web1 --networks ${lab.projectNetwork}${key.create}`,
    '  npx metalctl machine logs <id> --watch --until "phoned home"',
    `  npx metalctl machine console <id>${key.console}              # the serial console over SSH; ~. leaves`,
    "  npx metalctl machine free <id>",
    `Rendered switch configs: ${shown(lab.dir)}/switches/leaf01/etc/{frr/frr.conf,network/interfaces}`,
    `Ctrl-C stops everything; the next start reuses ${shown(dataDir)}.`,
    "",
  );
  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  // From the process's own start: the time a person waited includes loading the code.
  const startedAt = Date.now() - process.uptime() * 1000;
  let args: LabArgs;
  let config: ReturnType<typeof loadConfig>;
  try {
    args = splitArgs(argv, process.env);
    config = loadConfig(process.env, args.rest);
    // Several processes cannot open one embedded database: said before anything starts.
    if (args.replicas > 1 && (!config.databaseUrl || !config.masterdataDatabaseUrl)) {
      throw new ConfigError(`--replicas ${args.replicas} needs PostgreSQL: set DATABASE_URL and MASTERDATA_DATABASE_URL (the embedded databases cannot be shared by several metal-api processes)`);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`metal-lab: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  // Logs on stdout (pretty for a person, JSON for a machine); what a person waits for on stderr, never between JSON lines.
  const say = (line: string) => void process.stderr.write(`metal-lab: ${line}\n`);
  say(`starting: ${args.machines} simulated machines${args.replicas > 1 ? `, ${args.replicas} control-plane replicas` : ""}, data in ${shown(config.dataDir)}`);
  const [{ createLogger }, { Lab }, { LAB }, { reportMachinesUp }, { createTransport }] = await Promise.all([
    import("../../server/logger.js"),
    import("./lab.js"),
    import("./seed.js"),
    import("./progress.js"),
    import("../../client/transport.js"),
  ]);
  let pretty = args.logFormat === undefined ? process.stdout.isTTY === true : args.logFormat === "pretty";
  if (pretty && !prettyPrinterInstalled()) {
    // A production install (npm install --omit=dev) has no pino-pretty: JSON then, rather than no start at all.
    if (args.logFormat === "pretty") say("--log-format pretty needs the dev dependency pino-pretty (npm install); logging JSON");
    pretty = false;
  }
  const log = createLogger(config.logLevel, { pretty });
  // A step that takes long (an embedded database's first start takes many seconds) says so every few seconds.
  let step = { what: "", at: Date.now() };
  const progress = (what: string) => {
    step = { what, at: Date.now() };
    say(what);
  };
  const stillBusy = setInterval(() => {
    const secs = Math.round((Date.now() - step.at) / 1000);
    if (step.what !== "" && secs >= STILL_BUSY_S) say(`… still ${step.what.split(" (")[0]} (${secs} s)`);
  }, STILL_BUSY_S * 1000);
  let lab: Lab;
  try {
    lab = await Lab.start({ config, log, machines: args.machines, replicas: args.replicas, labListen: args.labListen, metalctlConfig: args.metalctlConfig, resetAdminToken: args.resetAdminToken, progress });
  } catch (err) {
    if (err instanceof LabStartError) {
      say(err.message);
      log.flush();
      return 1;
    }
    throw err;
  } finally {
    clearInterval(stillBusy);
  }
  log.info(
    { url: lab.apiUrl, lab: lab.labUrl, console: lab.consoleAddress, machines: lab.machines.length, database: config.databaseUrl ? "postgres" : "embedded", dataDir: config.dataDir },
    `metal-lab listening on ${lab.apiUrl}`,
  );
  process.stderr.write(banner(lab, args, LAB));
  const stopReport = new AbortController();
  const report = reportMachinesUp({
    transport: createTransport({ baseUrl: lab.apiUrl, protocol: "connect", binary: true, token: lab.adminToken }),
    partition: LAB.partition,
    ids: new Set(lab.machines.map((m) => m.uuid)),
    print: say,
    startedAt,
    // Twice a second: the line that says all machines wait comes at most half a second after they do.
    intervalMs: 500,
    signal: stopReport.signal,
  });
  const signal = await new Promise<string>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => resolve(sig));
  });
  log.info({ signal }, "shutting down");
  stopReport.abort();
  await report;
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
