import type { Command } from "@oclif/core";

type CommandMap = Record<string, typeof Command>;

/** Which module holds a top-level word's commands (topics, their aliases, and top-level commands). */
const MODULES: Record<string, () => Promise<CommandMap>> = {
  machine: async () => (await import("./commands/machine.js")).MACHINE_COMMANDS,
  network: async () => (await import("./commands/network.js")).NETWORK_COMMANDS,
  catalog: async () => (await import("./commands/catalog.js")).CATALOG_COMMANDS,
  switch: async () => (await import("./commands/switch.js")).SWITCH_COMMANDS,
  masterdata: async () => (await import("./commands/masterdata.js")).MASTERDATA_COMMANDS,
  misc: async () => (await import("./commands/misc.js")).MISC_COMMANDS,
  audit: async () => (await import("./commands/audit.js")).AUDIT_COMMANDS,
  login: async () => (await import("./commands/login.js")).LOGIN_COMMANDS,
};

const WORDS: Record<string, keyof typeof MODULES> = {};
for (const [module, words] of Object.entries({
  machine: "machine machines ms firewall firewalls fw",
  network: "network networks net ip ips",
  catalog: "partition partitions size sizes image images filesystemlayout filesystemlayouts fsl",
  switch: "switch switches sw",
  masterdata: "tenant tenants project projects",
  login: "login logout",
  misc: "context ctx whoami version health token tokens",
  audit: "audit audits",
}))
  for (const w of words.split(" ")) WORDS[w] = module as keyof typeof MODULES;

/** The modules a command line needs: only its topic's for a command, all of them for help or completion. */
export function modulesFor(argv: string[]): string[] {
  const word = argv.find((a) => !a.startsWith("-"));
  const module = word === undefined ? undefined : WORDS[word];
  if (!module || argv.includes("--help") || argv.includes("-h")) return Object.keys(MODULES);
  return [module];
}

/**
 * The metalctl commands by id, the map of oclif's "explicit" strategy (no
 * directory scan), built from only the modules the command line needs:
 * importing every topic's generated descriptors would cost a third of the
 * start-up time.
 */
export async function loadCommands(modules: string[]): Promise<CommandMap> {
  const maps = await Promise.all(modules.map((m) => MODULES[m]!()));
  return Object.assign({}, ...maps) as CommandMap;
}
