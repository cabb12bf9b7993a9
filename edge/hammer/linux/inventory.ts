import { access, readFile } from "node:fs/promises";
import type { Inventory, Neighbor } from "../hardware.js";
import { InventoryError, type LinkInfo, parseCpuinfo, parseIpLinks, parseLldpNeighbors, parseLsblk, parseLspciGpus, parseMeminfo, parseSystemUuid } from "./parsers.js";
import type { CommandRunner } from "./runner.js";

/** The files the inventory reads; tests hand in captured ones. */
export interface SystemFiles {
  /** The file's text, or undefined when it does not exist or cannot be read. */
  read(path: string): Promise<string | undefined>;
  exists(path: string): Promise<boolean>;
}

export const hostFiles: SystemFiles = {
  read: (path) => readFile(path, "utf8").catch(() => undefined),
  exists: (path) =>
    access(path).then(
      () => true,
      () => false,
    ),
};

export interface LldpWait {
  /** How long to wait for neighbours at most; the switches may still be sending their first LLDP frames. */
  timeoutMs: number;
  intervalMs: number;
  /** Stop waiting once this many NICs see a neighbour (a machine is cabled to two leaves). */
  enough: number;
}

export const DEFAULT_LLDP_WAIT: LldpWait = { timeoutMs: 60_000, intervalMs: 2_000, enough: 2 };

export interface InventoryDeps {
  runner: CommandRunner;
  files: SystemFiles;
  lldp?: LldpWait;
  /** Waits between LLDP polls; tests resolve at once. */
  sleep?: (ms: number) => Promise<void>;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

const DMI = "/sys/class/dmi/id";

/** Reads the whole inventory; only the UUID, memory, CPUs and disks are required, the rest is what can be found. */
export async function readInventory(deps: InventoryDeps): Promise<Inventory> {
  const [uuid, memoryBytes, cpus, disks, links, gpus, bios] = await Promise.all([
    systemUuid(deps),
    required(deps.files, "/proc/meminfo").then(parseMeminfo),
    required(deps.files, "/proc/cpuinfo").then(parseCpuinfo),
    deps.runner.run(["lsblk", "-J", "-b", "-d", "-o", "NAME,SIZE,TYPE,RO,RM"]).then((r) => parseLsblk(r.stdout)),
    physicalLinks(deps),
    readGpus(deps),
    readBios(deps.files),
  ]);
  const neighbors = await waitForNeighbors(deps, links);
  return {
    uuid,
    memoryBytes,
    cpus,
    disks,
    nics: links.map((l) => ({ name: l.name, mac: l.mac, neighbors: neighbors.get(l.name) ?? [] })),
    gpus,
    bios,
  };
}

async function required(files: SystemFiles, path: string): Promise<string> {
  const text = await files.read(path);
  if (text === undefined) throw new InventoryError(`cannot read ${path}`);
  return text;
}

/** product_uuid needs root and a kernel with DMI; dmidecode reads the SMBIOS table itself. */
async function systemUuid(deps: InventoryDeps): Promise<string> {
  const sys = await deps.files.read(`${DMI}/product_uuid`);
  if (sys !== undefined && sys.trim() !== "") return parseSystemUuid(sys);
  if (!deps.runner.has("dmidecode")) throw new InventoryError(`cannot read ${DMI}/product_uuid and dmidecode is not installed`);
  const r = await deps.runner.run(["dmidecode", "-s", "system-uuid"]);
  return parseSystemUuid(r.stdout);
}

async function physicalLinks(deps: InventoryDeps): Promise<LinkInfo[]> {
  const r = await deps.runner.run(["ip", "-j", "-d", "link", "show"]);
  const links = parseIpLinks(r.stdout);
  const keep = await Promise.all(links.map(async (l) => l.parentBus !== undefined || (await deps.files.exists(`/sys/class/net/${l.name}/device`))));
  return links.filter((_, i) => keep[i]);
}

async function readGpus(deps: InventoryDeps): Promise<Inventory["gpus"]> {
  if (!deps.runner.has("lspci")) return [];
  const r = await deps.runner.run(["lspci", "-mm", "-nn"], { allowFailure: true });
  return r.code === 0 ? parseLspciGpus(r.stdout) : [];
}

async function readBios(files: SystemFiles): Promise<Inventory["bios"]> {
  const [vendor, version, date] = await Promise.all(["bios_vendor", "bios_version", "bios_date"].map(async (f) => (await files.read(`${DMI}/${f}`))?.trim() ?? ""));
  return { vendor: vendor!, version: version!, date: date! };
}

/**
 * LLDP neighbours, waiting a while for them: the discovery image boots
 * faster than the switches' first LLDP frames arrive (every 30 s by
 * default), and the control plane can only place a machine it sees cabled.
 * Without lldpcli (or lldpd) the NICs are reported without neighbours.
 */
async function waitForNeighbors(deps: InventoryDeps, links: LinkInfo[]): Promise<Map<string, Neighbor[]>> {
  if (!deps.runner.has("lldpcli")) {
    deps.log?.("lldpcli is not installed; NICs are reported without LLDP neighbours");
    return new Map();
  }
  const wait = deps.lldp ?? DEFAULT_LLDP_WAIT;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const enough = Math.min(wait.enough, links.filter((l) => l.lowerUp).length);
  let found = new Map<string, Neighbor[]>();
  for (let waited = 0; ; waited += wait.intervalMs) {
    const r = await deps.runner.run(["lldpcli", "-f", "json", "show", "neighbors"], { allowFailure: true, timeoutMs: 10_000 });
    if (r.code === 0) found = parseLldpNeighbors(r.stdout);
    const seen = links.filter((l) => (found.get(l.name)?.length ?? 0) > 0).length;
    if (seen >= enough || waited >= wait.timeoutMs) {
      if (seen < enough) deps.log?.("LLDP: fewer NICs see a switch than expected", { seen, expected: enough });
      // What each NIC heard, for the operator who has to tell a cabling fault from a switch's naming.
      deps.log?.("LLDP neighbours", { neighbors: Object.fromEntries([...found].map(([nic, ns]) => [nic, ns.map((n) => `${n.hostname} ${n.port}`)])) });
      return found;
    }
    await sleep(wait.intervalMs);
  }
}
