import type { Inventory, Neighbor } from "../hardware.js";

/**
 * Pure parsers for what Linux tells about the machine: /proc and /sys files
 * and the JSON of lsblk, ip and lldpcli. Each takes the text as the tool
 * prints it and throws InventoryError when it cannot make sense of it.
 */

export class InventoryError extends Error {}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The SMBIOS UUID as /sys/class/dmi/id/product_uuid or `dmidecode -s
 * system-uuid` print it, lowercased. Firmware that never set one prints all
 * zeros, all Fs or a placeholder; none of those can name a machine.
 */
export function parseSystemUuid(text: string): string {
  // dmidecode prints comment lines ("# SMBIOS implementations newer than ...") before the value.
  const line = text
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l !== "" && !l.startsWith("#"));
  const uuid = (line ?? "").toLowerCase();
  if (!UUID.test(uuid)) throw new InventoryError(`the SMBIOS UUID "${uuid.slice(0, 60)}" is not a UUID`);
  if (/^[0-]+$/.test(uuid) || /^[f-]+$/.test(uuid)) throw new InventoryError(`the SMBIOS UUID ${uuid} is a placeholder the firmware never replaced`);
  return uuid;
}

/** MemTotal of /proc/meminfo, in bytes (the file says kB and means KiB). */
export function parseMeminfo(text: string): bigint {
  const m = /^MemTotal:\s+(\d+)\s*kB$/m.exec(text);
  if (!m) throw new InventoryError("/proc/meminfo has no MemTotal line");
  return BigInt(m[1]!) * 1024n;
}

/**
 * One entry per physical package (socket) from /proc/cpuinfo: cores from
 * "cpu cores" (or the distinct core ids), threads as the logical processors
 * of the package. Without "physical id" (ARM, some hypervisors) every
 * processor counts as one core of a single package.
 */
export function parseCpuinfo(text: string): Inventory["cpus"] {
  const blocks = text
    .split(/\n\s*\n/)
    .map(parseBlock)
    .filter((b) => b.has("processor"));
  if (blocks.length === 0) throw new InventoryError("/proc/cpuinfo lists no processor");
  const packages = new Map<string, Map<string, string>[]>();
  for (const b of blocks) {
    const id = b.get("physical id") ?? "0";
    const list = packages.get(id) ?? [];
    list.push(b);
    packages.set(id, list);
  }
  return [...packages.entries()]
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([, procs]) => {
      const first = procs[0]!;
      const declared = Number(first.get("cpu cores"));
      const coreIds = new Set(procs.map((p) => p.get("core id")).filter((c) => c !== undefined));
      const cores = Number.isInteger(declared) && declared > 0 ? declared : coreIds.size > 0 ? coreIds.size : procs.length;
      return {
        vendor: first.get("vendor_id") ?? first.get("CPU implementer") ?? "",
        model: first.get("model name") ?? first.get("Model") ?? first.get("cpu model") ?? "",
        cores,
        threads: procs.length,
      };
    });
}

function parseBlock(block: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of block.split("\n")) {
    const at = line.indexOf(":");
    if (at <= 0) continue;
    fields.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
  }
  return fields;
}

/** Device names that lsblk calls "disk" but that hold nothing to install on. */
const NOT_A_DISK = /^(zram|ram|loop|nbd|md|dm-)\d/;

/**
 * The machine's disks from `lsblk -J -b -d -o NAME,SIZE,TYPE,RO,RM`: type
 * "disk", neither removable (USB sticks, virtual media of the BMC) nor
 * read-only, with a size. Old lsblk versions print numbers and flags as
 * strings ("0"/"1"), new ones as numbers and booleans; both are read.
 */
export function parseLsblk(json: string): Inventory["disks"] {
  const doc = parseJson(json, "lsblk") as { blockdevices?: unknown };
  if (!Array.isArray(doc.blockdevices)) throw new InventoryError("lsblk printed no blockdevices");
  const disks: Inventory["disks"] = [];
  for (const raw of doc.blockdevices as Record<string, unknown>[]) {
    const name = String(raw.name ?? "");
    if (raw.type !== "disk" || name === "" || NOT_A_DISK.test(name)) continue;
    if (flag(raw.ro) || flag(raw.rm)) continue;
    const size = raw.size === null || raw.size === undefined ? 0n : BigInt(String(raw.size));
    if (size <= 0n) continue;
    disks.push({ name: `/dev/${name}`, sizeBytes: size });
  }
  return disks;
}

function flag(v: unknown): boolean {
  return v === true || v === 1 || v === "1" || v === "true";
}

/** A network link as `ip -j -d link show` describes it. */
export interface LinkInfo {
  name: string;
  mac: string;
  /** iproute2 names the parent bus (pci, virtio, usb) of links backed by a device; older versions do not, then /sys decides. */
  parentBus: string | undefined;
  /** Carrier is up: worth waiting for LLDP on. */
  lowerUp: boolean;
}

/**
 * Ethernet links with a MAC that are not virtual: `ip -d` adds a "linkinfo"
 * with an "info_kind" (bridge, bond, vlan, veth, vxlan, ifb, ...) to every
 * virtual link. A physical NIC enslaved to a bond carries only
 * "info_slave_kind" and stays, with its permanent MAC (the bond rewrites
 * the address).
 */
export function parseIpLinks(json: string): LinkInfo[] {
  const links = parseJson(json, "ip link") as Record<string, unknown>[];
  if (!Array.isArray(links)) throw new InventoryError("ip link printed no list");
  const result: LinkInfo[] = [];
  for (const l of links) {
    const name = String(l.ifname ?? "");
    if (l.link_type !== "ether" || name === "") continue;
    const info = l.linkinfo as Record<string, unknown> | undefined;
    if (info?.info_kind !== undefined) continue;
    const mac = String(l.permaddr ?? l.address ?? "").toLowerCase();
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) || mac === "00:00:00:00:00:00") continue;
    const flags = Array.isArray(l.flags) ? (l.flags as string[]) : [];
    result.push({ name, mac, parentBus: typeof l.parentbus === "string" ? l.parentbus : undefined, lowerUp: flags.includes("LOWER_UP") });
  }
  return result;
}

/**
 * LLDP neighbours per local interface from `lldpcli -f json show neighbors`.
 * lldpd's JSON turns lists of one into plain objects: "interface" is an
 * object keyed by the interface name when one interface has a neighbour and
 * a list of such objects when several do (an interface with two neighbours
 * appears twice); "chassis" is keyed by the system name, or holds "id"
 * directly when the neighbour sends no name. The port is the port id when
 * it names an interface (swp1, Ethernet0), the port description otherwise.
 */
export function parseLldpNeighbors(json: string): Map<string, Neighbor[]> {
  const doc = parseJson(json, "lldpcli") as { lldp?: unknown };
  const byInterface = new Map<string, Neighbor[]>();
  for (const lldp of asList(doc.lldp)) {
    const interfaces = (lldp as Record<string, unknown> | undefined)?.interface;
    for (const entry of asList(interfaces)) {
      if (typeof entry !== "object" || entry === null) continue;
      for (const [ifname, details] of Object.entries(entry as Record<string, unknown>)) {
        for (const d of asList(details)) {
          const n = neighborOf(d as Record<string, unknown>);
          if (!n) continue;
          const list = byInterface.get(ifname) ?? [];
          if (!list.some((x) => x.hostname === n.hostname && x.port === n.port)) list.push(n);
          byInterface.set(ifname, list);
        }
      }
    }
  }
  return byInterface;
}

function neighborOf(d: Record<string, unknown> | undefined): Neighbor | undefined {
  if (!d) return undefined;
  let hostname = "";
  for (const c of asList(d.chassis)) {
    if (typeof c !== "object" || c === null) continue;
    const obj = c as Record<string, unknown>;
    if ("id" in obj && typeof obj.id === "object") hostname ||= lldpValue(obj.name);
    else hostname ||= Object.keys(obj)[0] ?? "";
  }
  const port = asList(d.port)[0] as Record<string, unknown> | undefined;
  const id = port?.id as Record<string, unknown> | undefined;
  const idType = lldpValue(id?.type);
  const idValue = lldpValue(id?.value);
  const descr = lldpValue(port?.descr);
  const name = (idType === "ifname" || idType === "local") && idValue ? idValue : descr || idValue;
  if (!hostname && !name) return undefined;
  return { hostname, port: name };
}

/** lldpd prints some values as {"value": "x"} and others as plain strings. */
function lldpValue(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && "value" in v) return String((v as { value: unknown }).value);
  return "";
}

function asList(v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

/**
 * GPUs from `lspci -mm -nn`: 3D controllers (compute cards) and display
 * controllers of GPU vendors (NVIDIA, AMD). The VGA chip every server has
 * on its BMC (ASPEED, Matrox) is not a GPU anyone would book.
 */
export function parseLspciGpus(text: string): Inventory["gpus"] {
  const gpus: Inventory["gpus"] = [];
  for (const line of text.split("\n")) {
    const fields = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
    if (fields.length < 3) continue;
    const [cls, vendor, device] = fields as [string, string, string];
    const classId = /\[(\w{4})\]$/.exec(cls)?.[1];
    const vendorId = /\[(\w{4})\]$/.exec(vendor)?.[1]?.toLowerCase();
    const gpuVendor = vendorId === "10de" || vendorId === "1002";
    if (classId === "0302" || (classId?.startsWith("03") && gpuVendor)) gpus.push({ vendor: stripId(vendor), model: stripId(device) });
  }
  return gpus;
}

function stripId(s: string): string {
  return s.replace(/\s*\[\w{4}\]$/, "");
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new InventoryError(`${what} printed no JSON: ${text.slice(0, 100)}`);
  }
}
