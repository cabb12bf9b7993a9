import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { Args, type Command, Flags } from "@oclif/core";
import { parseHostPort } from "../../client/host-port.js";
import * as admin from "../../gen/metal/admin/v1/machine_pb.js";
import * as api from "../../gen/metal/api/v1/machine_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { aliasesOf, allPages, atFile, MetalCommand } from "../base.js";
import { readText } from "../documents.js";
import { Exit } from "../errors.js";
import { io, processIo } from "../io.js";
import { type Column, enumLabel, isoTime, jsonOf, renderData, renderTable, since, truncate, UsageError } from "../output.js";
import { followWatch, type OpenWatch, type WatchMessage } from "./machine-watch.js";

const { MachineState: State, MachineLiveliness: Live, MachineRole: Role } = api;
const MACHINE = ["machines", "ms"];
const FIREWALL = ["firewalls", "fw"];

/** The status emojis of the original metalctl, in its order. */
export function machineStatus(m: api.Machine, now = Date.now()): string {
  const e = m.events;
  let s = "";
  if (m.state === State.LOCKED) s += "🔒";
  if (m.state === State.TAINTED) s += "🚧";
  if (e?.liveliness === Live.DEAD) s += "💀";
  if (e?.liveliness === Live.UNKNOWN) s += "❓";
  if (e?.crashLoop) s += "⭕";
  if (e?.failedMachineReclaim) s += "🚑";
  // A recent error only: the original's list threshold is one hour.
  const err = e?.lastErrorEvent?.time;
  if (err && now - timestampDate(err).getTime() < 3600_000) s += "❗";
  return s;
}

const lastEvent = (m: api.Machine) => m.events?.log[0];

export const machineColumns: Column<api.Machine>[] = [
  { header: "ID", value: (m) => m.id },
  { header: "", value: (m) => machineStatus(m) },
  { header: "Last Event", value: (m) => enumLabel(api.ProvisioningEventTypeSchema, lastEvent(m)?.type ?? 0) },
  { header: "When", value: (m) => since(lastEvent(m)?.time) },
  { header: "Age", value: (m) => since(m.allocation?.createdAt) },
  { header: "Hostname", value: (m) => m.allocation?.hostname ?? "" },
  { header: "Project", value: (m) => m.allocation?.project ?? "" },
  { header: "Size", value: (m) => m.size },
  { header: "Image", value: (m) => m.allocation?.image ?? "" },
  { header: "Partition", value: (m) => m.partition },
  { header: "Rack", value: (m) => m.rack },
  { header: "Name", value: (m) => m.allocation?.name ?? "", wide: true },
  { header: "Description", value: (m) => truncate(m.allocation?.description ?? "", 30), wide: true },
  { header: "IPs", value: (m) => (m.allocation?.networks ?? []).flatMap((n) => n.ips).join(","), wide: true },
  { header: "Started", value: (m) => isoTime(m.allocation?.createdAt), wide: true },
  { header: "Tags", value: (m) => m.tags.join(","), wide: true },
  { header: "Lock/Reserve", value: (m) => (m.state === State.LOCKED || m.state === State.TAINTED ? `${enumLabel(api.MachineStateSchema, m.state).toLowerCase()}: ${m.stateReason}` : ""), wide: true },
];

const eventColumns: Column<api.ProvisioningEvent>[] = [
  { header: "Time", value: (e) => isoTime(e.time) },
  { header: "Event", value: (e) => enumLabel(api.ProvisioningEventTypeSchema, e.type) },
  { header: "Message", value: (e) => e.message },
];

const projectFlag = Flags.string({ description: "project of the machine (default: the context's)" });
const idArg = { id: Args.string({ required: true, description: "machine id" }) };

type Cmd = MetalCommand<typeof Command>;

/**
 * A machine by id for whoever asks. With a project (--project or the
 * context's) through the tenant service; without one an operator reads it
 * through the admin service, and a tenant through the tenant service in the
 * token's own projects: the one it has, or the one that holds the machine.
 * `project` is the project it was read in, undefined for the admin read.
 */
async function findMachine(c: Cmd, id: string, projectFlag?: string): Promise<{ machine: api.Machine; project?: string }> {
  const project = c.project(projectFlag);
  if (project) return { machine: (await c.client(api.MachineService).get({ id, project })).machine!, project };
  try {
    return { machine: (await c.client(admin.MachineService).get({ id })).machine! };
  } catch (err) {
    if (!(err instanceof ConnectError && err.code === Code.PermissionDenied)) throw err;
  }
  return findInOwnProjects(c, id);
}

async function findInOwnProjects(c: Cmd, id: string): Promise<{ machine: api.Machine; project: string }> {
  const roles = (await c.client(UserService).get({})).user?.token?.roles;
  const projects = Object.keys(roles?.projectRoles ?? {}).sort();
  if (projects.length === 0) {
    throw new UsageError("--project is required: your token has no project of its own to look the machine up in (or set one in the context: metalctl context add NAME --project ID)");
  }
  const tries = await Promise.all(
    projects.map(async (project) => {
      try {
        return { machine: (await c.client(api.MachineService).get({ id, project })).machine!, project };
      } catch (err) {
        // Each project answers "not here" in its own way; only a hit counts.
        if (err instanceof ConnectError && (err.code === Code.NotFound || err.code === Code.PermissionDenied)) return undefined;
        throw err;
      }
    }),
  );
  const found = tries.find((t) => t !== undefined);
  if (!found) throw new ConnectError(`machine "${id}" not found in your project${projects.length > 1 ? "s" : ""} ${projects.join(", ")}`, Code.NotFound);
  return found;
}

async function getMachine(c: Cmd, id: string, projectFlag?: string): Promise<api.Machine> {
  return (await findMachine(c, id, projectFlag)).machine;
}

/** The project a tenant call about this machine needs: given, from the context, its allocation's (operators) or the caller's project that holds it. */
async function projectOf(c: Cmd, id: string, projectFlag?: string): Promise<{ project: string; machine?: api.Machine }> {
  const project = c.project(projectFlag);
  if (project) return { project };
  const found = await findMachine(c, id);
  if (found.project) return { project: found.project, machine: found.machine };
  if (!found.machine.allocation) throw new ConnectError(`machine "${id}" is not allocated`, Code.FailedPrecondition);
  return { project: found.machine.allocation.project, machine: found.machine };
}

async function listMachines(c: Cmd, f: { project?: string; partition?: string; size?: string; rack?: string; allocated?: boolean }): Promise<api.Machine[]> {
  const project = c.project(f.project);
  const adminFilters = f.partition !== undefined || f.size !== undefined || f.rack !== undefined || f.allocated !== undefined;
  if (project && !adminFilters) {
    return allPages(async (paging) => {
      const r = await c.client(api.MachineService).list({ project, paging });
      return { items: r.machines, next: r.nextPageToken };
    });
  }
  try {
    return await allPages(async (paging) => {
      const r = await c.client(admin.MachineService).list({ paging, project, partition: f.partition, size: f.size, rack: f.rack, allocated: f.allocated });
      return { items: r.machines, next: r.nextPageToken };
    });
  } catch (err) {
    // A tenant without a project in the context lands here; say what would work.
    if (err instanceof ConnectError && err.code === Code.PermissionDenied && !project) {
      throw new ConnectError(`${err.rawMessage} (listing all machines is for operators; give --project or set one in the context)`, Code.PermissionDenied);
    }
    throw err;
  }
}

const listFlags = {
  project: Flags.string({ description: "only machines of this project (default: the context's)" }),
  partition: Flags.string({ description: "only in this partition" }),
  size: Flags.string({ description: "only of this size" }),
  rack: Flags.string({ description: "only in this rack" }),
  allocated: Flags.boolean({ allowNo: true, description: "only allocated (--no-allocated: only free) machines" }),
  hostname: Flags.string({ description: "only with this hostname" }),
  image: Flags.string({ description: "only with an image id starting with this" }),
  "sort-by": Flags.string({ multiple: true, description: "column[:asc|:desc], e.g. --sort-by rack --sort-by hostname" }),
  watch: Flags.boolean({ char: "w", description: "keep the list current (MachineService.Watch): a terminal redraws the table, other outputs get one line per change" }),
};

export class MachineList extends MetalCommand<typeof MachineList> {
  static override summary = "list machines";
  static override hiddenAliases = aliasesOf("machine:list", MACHINE, ["ls"]);
  static override examples = ["metalctl machine list --partition fra-equ01 --no-allocated", "metalctl ms ls -o wide --sort-by rack"];
  static override flags = listFlags;
  static role: api.MachineRole | undefined = undefined;
  async run() {
    const f = this.flags;
    const role = (this.ctor as typeof MachineList).role;
    const matches = (m: api.Machine) =>
      (role === undefined || (m.allocation !== undefined && (m.allocation.role ?? Role.MACHINE) === role)) &&
      (!f.hostname || m.allocation?.hostname === f.hostname) &&
      (!f.image || m.allocation?.image.startsWith(f.image) === true);
    if (f.watch) return this.watch(matches);
    const items = (await listMachines(this, f)).filter(matches);
    this.printList(api.MachineSchema, items, machineColumns, { sortBy: f["sort-by"] });
  }

  /**
   * The list, kept current through MachineService.Watch (no polling): the
   * snapshot is printed as the table; then a terminal gets the table redrawn
   * on each change, anything else one line per change (KIND and the row, or
   * "gone ID"), and -o json/yaml every watch message as one JSON line.
   */
  private async watch(matches: (m: api.Machine) => boolean): Promise<void> {
    const f = this.flags;
    const project = this.project(f.project);
    const serverSide = (m: api.Machine) =>
      (f.size === undefined || m.size === f.size) &&
      (f.rack === undefined || m.rack === f.rack) &&
      (f.allocated === undefined || (m.allocation !== undefined) === f.allocated) &&
      (!project || m.allocation?.project === project);
    const tenant = project !== undefined && f.size === undefined && f.rack === undefined && f.allocated === undefined;
    const open: OpenWatch = (sinceRevision, signal) =>
      tenant
        ? this.client(api.MachineService).watch({ project, partition: f.partition, sinceRevision }, { signal })
        : this.client(admin.MachineService).watch({ partition: f.partition, sinceRevision }, { signal });
    const format = this.format("table");
    const tty = io() === processIo && process.stdout.isTTY === true;
    const rows = new Map<string, api.Machine>();
    let live = false;
    let redraw = false;
    const table = () => {
      if (tty) this.out("\x1b[H\x1b[2J");
      this.printList(
        api.MachineSchema,
        [...rows.values()].sort((x, y) => (x.id < y.id ? -1 : 1)),
        machineColumns,
        { sortBy: f["sort-by"] },
      );
    };
    const line = (kind: string, text: string) => this.out(`${kind.padEnd(9)}  ${text}\n`);
    await followWatch(open, (m: WatchMessage) => {
      if (format === "json" || format === "yaml") {
        this.out(`${JSON.stringify(jsonOf(api.MachineServiceWatchResponseSchema, create(api.MachineServiceWatchResponseSchema, { message: m })))}\n`);
        return false;
      }
      if (m.case === "reset") {
        rows.clear();
        live = false;
      } else if (m.case === "snapshot") {
        if (matches(m.value) && serverSide(m.value)) rows.set(m.value.id, m.value);
      } else if (m.case === "snapshotDone") {
        live = true;
        table();
      } else if (m.case === "change") {
        const c = m.value;
        const shown = c.machine !== undefined && matches(c.machine) && serverSide(c.machine) ? c.machine : undefined;
        const had = rows.delete(c.id);
        if (shown) rows.set(c.id, shown);
        if (!live || (!shown && !had)) return false;
        if (tty) {
          // Redrawn once for the changes that arrive together.
          if (!redraw) {
            redraw = true;
            setImmediate(() => {
              redraw = false;
              table();
            });
          }
        } else if (shown) {
          line(enumLabel(api.MachineWatchChangeKindSchema, c.kind).toLowerCase(), renderTable([shown], machineColumns, { wide: format === "wide", headers: false }).trimEnd());
        } else {
          line("gone", c.id);
        }
      }
      return false;
    });
  }
}

export class MachineDescribe extends MetalCommand<typeof MachineDescribe> {
  static override summary = "show a machine";
  static override hiddenAliases = aliasesOf("machine:describe", MACHINE, ["get"]);
  static override args = idArg;
  static override flags = { project: projectFlag };
  async run() {
    this.printOne(api.MachineSchema, await getMachine(this, this.args.id, this.flags.project), machineColumns, "yaml");
  }
}

/** The keys the original metalctl puts into an allocation when none is given, in its order of preference. */
const DEFAULT_KEYS = ["id_ed25519.pub", "id_rsa.pub", "id_dsa.pub"];

/**
 * The user's first default public key, else the public half of the context's
 * key (a lab generates one for users without a key), so that `machine
 * console` and ssh work on the new machine without a flag.
 */
function defaultSshKeys(home: string | undefined, contextKey: string | undefined): string[] {
  const candidates = [...(home ? DEFAULT_KEYS.map((name) => join(home, ".ssh", name)) : []), ...(contextKey ? [`${contextKey}.pub`] : [])];
  const found = candidates.find((path) => existsSync(path));
  return found ? [readText(found).trim()] : [];
}

export class MachineCreate extends MetalCommand<typeof MachineCreate> {
  static override summary = "allocate a machine";
  static override hiddenAliases = aliasesOf("machine:create", MACHINE, ["allocate"]);
  static override examples = ["metalctl machine create --partition fra-equ01 --size c1-large-x86 --image debian-12 --hostname web1 --networks <private-network>"];
  static override flags = {
    project: projectFlag,
    partition: Flags.string({ required: true, description: "partition to allocate in" }),
    size: Flags.string({ required: true, description: "size of the machine" }),
    image: Flags.string({ required: true, description: "image, a full id or a short one like debian-12" }),
    hostname: Flags.string({ description: "hostname of the OS" }),
    name: Flags.string({ description: "name of the machine" }),
    description: Flags.string(),
    id: Flags.string({ description: "allocate this machine instead of a random waiting one" }),
    networks: Flags.string({ multiple: true, description: "networks to attach; the first is the private, primary one" }),
    ips: Flags.string({ multiple: true, description: "static IPs of the project to attach" }),
    sshpublickey: Flags.string({ multiple: true, description: `SSH public key, or @file (default: the first of ${DEFAULT_KEYS.map((k) => `~/.ssh/${k}`).join(", ")} that exists)` }),
    userdata: Flags.string({ description: "cloud-init user data, or @file" }),
    tags: Flags.string({ multiple: true }),
    "placement-tags": Flags.string({ multiple: true, description: "spread machines carrying these over racks" }),
    filesystemlayout: Flags.string({ description: "filesystem layout instead of the first one that fits" }),
    dnsservers: Flags.string({ multiple: true }),
    ntpservers: Flags.string({ multiple: true }),
  };
  static role: api.MachineRole = Role.MACHINE;
  async run() {
    const f = this.flags;
    const r = await this.client(api.MachineService).create({
      project: this.requireProject(f.project),
      partition: f.partition,
      size: f.size,
      image: f.image,
      hostname: f.hostname ?? "",
      name: f.name ?? "",
      description: f.description ?? "",
      machineId: f.id,
      networks: f.networks ?? [],
      ips: f.ips ?? [],
      sshKeys: f.sshpublickey ? f.sshpublickey.map(atFile) : defaultSshKeys(this.env.HOME, this.currentContext().ctx.sshKey),
      userData: f.userdata ? atFile(f.userdata) : "",
      tags: f.tags ?? [],
      placementTags: f["placement-tags"] ?? [],
      filesystemLayout: f.filesystemlayout,
      dnsServers: f.dnsservers ?? [],
      ntpServers: f.ntpservers ?? [],
      role: (this.ctor as typeof MachineCreate).role,
    });
    this.printOne(api.MachineSchema, r.machine!, machineColumns);
  }
}

export class MachineUpdate extends MetalCommand<typeof MachineUpdate> {
  static override summary = "change the description, tags or SSH keys of an allocated machine";
  static override hiddenAliases = aliasesOf("machine:update", MACHINE);
  static override args = idArg;
  static override flags = {
    project: projectFlag,
    description: Flags.string(),
    tags: Flags.string({ multiple: true, description: "replace the tags" }),
    "clear-tags": Flags.boolean({ description: "remove all tags" }),
    sshpublickey: Flags.string({ multiple: true, description: "replace the SSH keys (key or @file)" }),
  };
  async run() {
    const f = this.flags;
    const { project, machine } = await projectOf(this, this.args.id, f.project);
    const cur = machine ?? (await this.client(api.MachineService).get({ id: this.args.id, project })).machine!;
    const r = await this.client(api.MachineService).update({
      id: this.args.id,
      project,
      version: cur.meta?.version ?? 0n,
      description: f.description,
      tags: f["clear-tags"] ? { values: [] } : f.tags ? { values: f.tags } : undefined,
      sshKeys: f.sshpublickey ? { values: f.sshpublickey.map(atFile) } : undefined,
    });
    this.printOne(api.MachineSchema, r.machine!, machineColumns);
  }
}

export class MachineDelete extends MetalCommand<typeof MachineDelete> {
  static override summary = "free a machine (it is wiped and waits again); operators may remove a dead one from the database";
  static override hiddenAliases = aliasesOf("machine:delete", MACHINE, ["free", "rm", "destroy"]);
  static override args = idArg;
  static override flags = { project: projectFlag, "remove-from-database": Flags.boolean({ description: "operators: remove a free, dead machine from the database" }) };
  async run() {
    if (this.flags["remove-from-database"]) {
      const r = await this.client(admin.MachineService).delete({ id: this.args.id });
      this.printOne(api.MachineSchema, r.machine!, machineColumns);
      return;
    }
    const { project } = await projectOf(this, this.args.id, this.flags.project);
    const r = await this.client(api.MachineService).delete({ id: this.args.id, project });
    this.printOne(api.MachineSchema, r.machine!, machineColumns);
  }
}

export class MachineReinstall extends MetalCommand<typeof MachineReinstall> {
  static override summary = "install another image; networks, IPs and ASN stay";
  static override hiddenAliases = aliasesOf("machine:reinstall", MACHINE);
  static override args = idArg;
  static override flags = { project: projectFlag, image: Flags.string({ required: true, description: "image, full or short id" }) };
  async run() {
    const { project } = await projectOf(this, this.args.id, this.flags.project);
    const r = await this.client(api.MachineService).reinstall({ id: this.args.id, project, image: this.flags.image });
    this.printOne(api.MachineSchema, r.machine!, machineColumns);
  }
}

export class MachineConsolePassword extends MetalCommand<typeof MachineConsolePassword> {
  static override summary = "print the console password of the installed OS (the reason is logged)";
  static override hiddenAliases = aliasesOf("machine:consolepassword", MACHINE);
  static override args = idArg;
  static override flags = { project: projectFlag, reason: Flags.string({ required: true, description: "why you need it (at least 10 characters)" }) };
  async run() {
    const { project } = await projectOf(this, this.args.id, this.flags.project);
    const r = await this.client(api.MachineService).consolePassword({ id: this.args.id, project, reason: this.flags.reason });
    this.printData({ consolePassword: r.consolePassword }, () => `${r.consolePassword}\n`);
  }
}

/** The SSH console's port when nothing else says: metal-api's METAL_CONSOLE_LISTEN default. */
const CONSOLE_PORT = 5222;

/** "host", "host:port", "[v6]:port" or a bare v6 address, into ssh's host and -p. */
export function consoleAddress(value: string): { host: string; port: number } {
  let address: { host: string; port: number };
  try {
    address = parseHostPort(value, { defaultPort: CONSOLE_PORT });
  } catch (err) {
    throw new UsageError(`--console-host: ${(err as Error).message}`);
  }
  if (address.port === 0 || address.host === "") throw new UsageError(`--console-host: "${value}" names no host and port to connect to`);
  return { host: address.host, port: address.port };
}

/** The arguments of `ssh` for a machine's console; the token travels in the environment, never on the command line. */
export function consoleSshArgs(id: string, address: { host: string; port: number }, identity?: string, knownHosts?: string): string[] {
  // The context's known_hosts beside the user's own: ssh checks the host key without asking, and learns nothing new into it.
  const hosts = knownHosts ? ["-o", `UserKnownHostsFile=${knownHosts} ~/.ssh/known_hosts`] : [];
  return ["-t", "-p", String(address.port), "-o", "SendEnv=LC_METAL_TOKEN", ...hosts, ...(identity ? ["-i", identity] : []), `${id}@${address.host}`];
}

export class MachineConsole extends MetalCommand<typeof MachineConsole> {
  static override summary = "open a machine's serial console: runs your ssh against metal-console (exit with ~.)";
  static override description =
    "The console address is --console-host, else $METALCTL_CONSOLE_HOST, else the context's `console` entry, else the API URL's host on port 5222. " +
    "Your token is sent in LC_METAL_TOKEN (ssh -o SendEnv); the SSH key must be one of the allocation's unless you are an operator admin. " +
    "A context's `knownHosts` file (the lab writes one) is given to ssh beside ~/.ssh/known_hosts, its `sshKey` when -i is not.";
  static override hiddenAliases = aliasesOf("machine:console", MACHINE);
  static override args = idArg;
  static override flags = {
    "console-host": Flags.string({ description: "metal-console address, host or host:port" }),
    identity: Flags.string({ char: "i", description: "private key file, passed to ssh -i" }),
  };
  async run() {
    const { url, token } = this.target();
    const { ctx } = this.currentContext();
    const configured = this.flags["console-host"] ?? this.env.METALCTL_CONSOLE_HOST ?? ctx.console;
    const address = configured ? consoleAddress(configured) : { host: new URL(url).hostname.replace(/^\[(.*)\]$/, "$1"), port: CONSOLE_PORT };
    const args = consoleSshArgs(this.args.id, address, this.flags.identity ?? ctx.sshKey, ctx.knownHosts);
    const env: Record<string, string | undefined> = { ...this.env };
    if (token) env.LC_METAL_TOKEN = token;
    else delete env.LC_METAL_TOKEN;
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn("ssh", args, { stdio: "inherit", env });
      child.once("error", (err: NodeJS.ErrnoException) => reject(err.code === "ENOENT" ? new UsageError("ssh not found on PATH; metalctl machine console runs the OpenSSH client") : err));
      child.once("exit", (c, signal) => resolve(c ?? (signal ? 128 : 1)));
    });
    // ssh has printed whatever went wrong; its status is ours.
    if (code !== 0) throw new Exit(code);
  }
}

/** The event types a log holds (ALIVE is a heartbeat, never stored), as `--until` takes them. */
const LOGGED_EVENTS = api.ProvisioningEventTypeSchema.values.filter((v) => v.number !== 0 && v.number !== api.ProvisioningEventType.ALIVE);
const eventWord = (localName: string) => localName.toLowerCase().replace(/_/g, "-");

/** `--until`'s event: "phoned home", "Phoned-Home", "PHONED_HOME" or the full proto name. */
export function parseUntilEvent(word: string): api.ProvisioningEventType {
  const norm = word
    .trim()
    .toUpperCase()
    .replace(/[-\s]+/g, "_");
  const v = LOGGED_EVENTS.find((x) => x.localName === norm || x.name === norm);
  if (!v) throw new UsageError(`--until: "${word}" is not a provisioning event; use one of ${LOGGED_EVENTS.map((x) => eventWord(x.localName)).join(", ")}`);
  return v.number;
}

/** Events that end a provisioning cycle: after them, the machine goes through its steps again. */
const CYCLE_START = new Set<api.ProvisioningEventType>([api.ProvisioningEventType.MACHINE_RECLAIM, api.ProvisioningEventType.PLANNED_REBOOT]);

/**
 * Whether the awaited event has already happened in the machine's current
 * cycle (since its last reclaim or planned reboot), or is its newest event.
 * Such an event counts for `--until`: `--until "phoned home"` right after a
 * create that was quick ends at once, while `--until waiting` after a free
 * waits for the next Waiting, not the one before the allocation.
 */
export function alreadyHappened(logOldestFirst: readonly api.ProvisioningEvent[], type: api.ProvisioningEventType): boolean {
  if (logOldestFirst.length === 0) return false;
  if (logOldestFirst[logOldestFirst.length - 1]!.type === type) return true;
  let cycle = 0;
  logOldestFirst.forEach((e, i) => {
    if (CYCLE_START.has(e.type)) cycle = i + 1;
  });
  return logOldestFirst.slice(cycle).some((e) => e.type === type);
}

/** Widths for every event a log can show, so that rows printed by later polls line up with the first table. */
const EVENT_WIDTHS = [new Date(0).toISOString().length, Math.max("EVENT".length, ...LOGGED_EVENTS.map((v) => enumLabel(api.ProvisioningEventTypeSchema, v.number).length)), 0];

const eventTime = (e: api.ProvisioningEvent) => (e.time ? timestampDate(e.time).getTime() : 0);

export class MachineLogs extends MetalCommand<typeof MachineLogs> {
  static override summary = "provisioning events of a machine, oldest first; --watch follows them";
  static override description =
    "--watch streams new events as the server stores them (MachineService.Watch, no polling; a dropped connection is resumed). " +
    "--until EVENT implies --watch: it prints the log and ends with exit code 0 as soon as EVENT is in the machine's current cycle " +
    "(since its last Machine Reclaim or Planned Reboot), at once if it already happened. " +
    `Events: ${LOGGED_EVENTS.map((x) => eventWord(x.localName)).join(", ")}.`;
  static override hiddenAliases = [...aliasesOf("machine:logs", MACHINE, ["log", "events"])];
  static override examples = ['metalctl machine logs <id> --watch --until "phoned home"', "metalctl machine logs <id> -w"];
  static override args = idArg;
  static override flags = {
    project: projectFlag,
    watch: Flags.boolean({ char: "w", description: "keep printing new events" }),
    until: Flags.string({ description: 'end when this event is in the current cycle, e.g. "phoned home" or waiting (implies --watch)' }),
    // Before Watch, --watch polled at this interval; scripts that still pass it keep working (it has no effect).
    interval: Flags.string({ hidden: true, description: "ignored: --watch streams" }),
  };
  async run() {
    const f = this.flags;
    // Every flag is checked before the first request: a typo must not turn into a wait that never ends.
    const untilType = f.until === undefined ? undefined : parseUntilEvent(f.until);
    const watch = f.watch || untilType !== undefined;
    const format = this.format("table");
    const structured = format === "json" || format === "yaml";
    const found = await findMachine(this, this.args.id, f.project);
    const project = found.project;
    const table = (rows: api.ProvisioningEvent[], headers: boolean) => renderTable(rows, eventColumns, { wide: false, headers, minWidths: EVENT_WIDTHS });

    const events = found.machine.events ?? create(api.MachineEventsSchema);
    // The server keeps the newest first; a log reads oldest first.
    const log = [...events.log].reverse();
    if (!watch) {
      if (structured) this.printOne(api.MachineEventsSchema, events);
      else {
        this.out(table(log, !this.global["no-headers"]));
        if (events.lastErrorEvent)
          this.out(`\nlast error: ${enumLabel(api.ProvisioningEventTypeSchema, events.lastErrorEvent.type)} ${since(events.lastErrorEvent.time)} ago: ${events.lastErrorEvent.message}\n`);
      }
      return;
    }
    const print = (rows: api.ProvisioningEvent[], headers: boolean) => {
      if (structured) for (const e of rows) this.out(renderData(jsonOf(api.ProvisioningEventSchema, e), format));
      else if (rows.length > 0 || headers) this.out(table(rows, headers));
    };
    // The log as the watch's snapshot has it (not as read above: an event in between would be lost).
    const id = found.machine.id;
    const open: OpenWatch = (sinceRevision, signal) =>
      project ? this.client(api.MachineService).watch({ project, id, events: true, sinceRevision }, { signal }) : this.client(admin.MachineService).watch({ id, events: true, sinceRevision }, { signal });
    let printed = false;
    let seen = 0;
    /** Prints the events not printed yet (a reconnect may repeat some); true when the awaited one is among them. */
    const fresh = (oldestFirst: readonly api.ProvisioningEvent[]) => {
      const rows = oldestFirst.filter((e) => eventTime(e) > seen);
      if (rows.length === 0) return false;
      print(rows, false);
      seen = Math.max(seen, ...rows.map(eventTime));
      return untilType !== undefined && rows.some((e) => e.type === untilType);
    };
    let gone: ConnectError | undefined;
    await followWatch(open, (m) => {
      if (m.case === "snapshot") {
        const history = [...(m.value.events?.log ?? [])].reverse();
        if (printed) return fresh(history);
        printed = true;
        print(history, !this.global["no-headers"]);
        seen = Math.max(0, ...history.map(eventTime));
        return untilType !== undefined && alreadyHappened(history, untilType);
      }
      if (m.case === "snapshotDone" && !printed) gone = new ConnectError(`machine "${id}" not found`, Code.NotFound);
      if (m.case === "eventsAdded") return fresh([...m.value.events].reverse());
      if (m.case === "change") {
        if (m.value.kind === api.MachineWatchChangeKind.DELETED) gone = new ConnectError(`machine "${id}" was deleted`, Code.NotFound);
        else if (m.value.kind === api.MachineWatchChangeKind.GONE) gone = new ConnectError(`machine "${id}" is no longer allocated to project ${project}`, Code.NotFound);
        else if (m.value.machine) return fresh([...(m.value.machine.events?.log ?? [])].reverse());
      }
      return gone !== undefined;
    });
    if (gone) throw gone;
  }
}

export class MachineIssues extends MetalCommand<typeof MachineIssues> {
  static override summary = "machines with issues (crash loop, failed reclaim, no event container, ...)";
  static override hiddenAliases = aliasesOf("machine:issues", MACHINE);
  static override args = { id: Args.string({ description: "only this machine" }) };
  static override flags = { partition: Flags.string({ description: "only in this partition" }) };
  async run() {
    let items = await allPages(async (paging) => {
      const r = await this.client(admin.MachineService).issues({ partition: this.flags.partition, paging });
      return { items: r.machines, next: r.nextPageToken };
    });
    if (this.args.id) items = items.filter((i) => i.machineId === this.args.id);
    this.printList(admin.MachineIssuesSchema, items, [
      { header: "ID", value: (i) => i.machineId },
      { header: "Issues", value: (i) => i.issues.join(", ") },
    ]);
  }
}

export class MachineCommands extends MetalCommand<typeof MachineCommands> {
  static override summary = "BMC commands queued for a machine and their results";
  static override hiddenAliases = aliasesOf("machine:commands", MACHINE);
  static override args = idArg;
  async run() {
    const r = await this.client(admin.MachineService).commands({ id: this.args.id });
    this.printList(admin.MachineCommandSchema, r.commands, [
      { header: "ID", value: (c) => c.id },
      { header: "Command", value: (c) => c.command },
      { header: "Status", value: (c) => enumLabel(admin.BmcCommandStatusSchema, c.status).toLowerCase() },
      { header: "Queued", value: (c) => since(c.createdAt) },
      { header: "Result", value: (c) => c.result },
    ]);
  }
}

function bmcCommand(id: string, command: admin.BmcCommand, summary: string, topics: string[] = MACHINE) {
  return class extends MetalCommand<typeof Command> {
    static override summary = summary;
    static override hiddenAliases = aliasesOf(id, topics);
    static override args = idArg;
    static override flags = { description: Flags.string({ description: "why (stored with LED commands)" }) };
    async run() {
      const machineId = (this.args as { id: string }).id;
      const r = await this.client(admin.MachineService).bMCCommand({ id: machineId, command, description: (this.flags as { description?: string }).description ?? "" });
      const c = r.command!;
      this.printOne(admin.MachineCommandSchema, c, [
        { header: "Machine", value: (x) => x.machineId },
        { header: "Command", value: (x) => x.command },
        { header: "Status", value: (x) => enumLabel(admin.BmcCommandStatusSchema, x.status).toLowerCase() },
        { header: "ID", value: (x) => x.id },
      ]);
    }
  };
}

/** The columns of a tenant's queued command, as Power and BootDevice answer it (the operators' columns, same order). */
const tenantCommandColumns = (machineId: string): Column<api.MachineBmcCommand>[] => [
  { header: "Machine", value: () => machineId },
  { header: "Command", value: (x) => x.command },
  { header: "Status", value: (x) => enumLabel(api.MachineBmcCommandStatusSchema, x.status).toLowerCase() },
  { header: "ID", value: (x) => x.id },
];

type TenantBmcCall = (machines: Client<typeof api.MachineService>, id: string, project: string) => Promise<{ command?: api.MachineBmcCommand }>;

/**
 * A BMC command of metalctl: with a project (--project or the context's) the
 * tenant's call for a machine of that project; without one the operators'
 * BMCCommand, as before.
 */
function tenantOrOperatorCommand(id: string, operatorCommand: admin.BmcCommand, summary: string, tenantCall: TenantBmcCall) {
  const operator = bmcCommand(id, operatorCommand, summary);
  return class extends operator {
    static override summary = `${summary} (with a project: as a project editor)`;
    static override flags = { ...operator.flags, project: projectFlag };
    override async run() {
      const project = this.project((this.flags as { project?: string }).project);
      if (!project) return super.run();
      const machineId = (this.args as { id: string }).id;
      const r = await tenantCall(this.client(api.MachineService), machineId, project);
      this.printOne(api.MachineBmcCommandSchema, r.command!, tenantCommandColumns(machineId));
    }
  };
}

/** `machine power on|off|reset|cycle`: MachineService.Power for a tenant. */
function powerCommand(id: string, action: api.MachinePowerAction, operatorCommand: admin.BmcCommand, summary: string) {
  return tenantOrOperatorCommand(id, operatorCommand, summary, (machines, machineId, project) => machines.power({ id: machineId, project, action }));
}

/** `machine bootdevice pxe|disk|bios`: the device the machine boots from next; MachineService.BootDevice for a tenant. */
function bootDeviceCommand(id: string, device: api.MachineBootDevice, operatorCommand: admin.BmcCommand, summary: string) {
  return tenantOrOperatorCommand(id, operatorCommand, summary, (machines, machineId, project) => machines.bootDevice({ id: machineId, project, device }));
}

export class MachineBmc extends MetalCommand<typeof MachineBmc> {
  static override summary = "a machine's BMC as last reported (power state, firmware) and its recent BMC commands; never its address or login";
  static override hiddenAliases = aliasesOf("machine:bmc", MACHINE);
  static override args = idArg;
  static override flags = { project: projectFlag };
  async run() {
    const { project } = await projectOf(this, this.args.id, this.flags.project);
    const r = await this.client(api.MachineService).getBmc({ id: this.args.id, project });
    const b = r.bmc;
    this.printData(jsonOf(api.MachineServiceGetBmcResponseSchema, r), () => {
      const head = b ? `power: ${b.powerState}\nfirmware: ${b.firmwareVersion}\nreported: ${since(b.lastUpdated)} ago\n` : "power: not reported yet\n";
      const rows = renderTable(
        r.commands,
        [
          { header: "ID", value: (c) => c.id },
          { header: "Command", value: (c) => c.command },
          { header: "Status", value: (c) => enumLabel(api.MachineBmcCommandStatusSchema, c.status).toLowerCase() },
          { header: "Queued", value: (c) => since(c.createdAt) },
        ],
        { wide: false, headers: !this.global["no-headers"] },
      );
      return `${head}\n${rows}`;
    });
  }
}

function stateCommand(id: string, state: api.MachineState, summary: string, verbAliases: string[] = []) {
  return class extends MetalCommand<typeof Command> {
    static override summary = summary;
    static override hiddenAliases = aliasesOf(id, MACHINE, verbAliases);
    static override args = idArg;
    static override flags = {
      reason: Flags.string({ description: "why (required unless --remove)" }),
      remove: Flags.boolean({ description: "release the machine again (state available)" }),
    };
    async run() {
      const f = this.flags as unknown as { reason?: string; remove: boolean };
      if (!f.remove && !f.reason) throw new UsageError("--reason is required");
      const r = await this.client(admin.MachineService).setState({ id: (this.args as { id: string }).id, state: f.remove ? State.AVAILABLE : state, reason: f.remove ? "" : f.reason! });
      this.printOne(api.MachineSchema, r.machine!, machineColumns);
    }
  };
}

export class FirewallList extends MachineList {
  static override summary = "list firewalls";
  static override hiddenAliases = aliasesOf("firewall:list", FIREWALL, ["ls"]);
  static override role = Role.FIREWALL;
}
export class FirewallDescribe extends MachineDescribe {
  static override summary = "show a firewall";
  static override hiddenAliases = aliasesOf("firewall:describe", FIREWALL, ["get"]);
}
export class FirewallCreate extends MachineCreate {
  static override summary = "allocate a firewall (it also joins the partition's underlay)";
  static override hiddenAliases = aliasesOf("firewall:create", FIREWALL, ["allocate"]);
  static override examples = ["metalctl firewall create --partition fra-equ01 --size c1-large-x86 --image firewall-ubuntu-3 --networks <private> --networks internet"];
  static override role = Role.FIREWALL;
}

const B = admin.BmcCommand;
const P = api.MachinePowerAction;
const D = api.MachineBootDevice;
export const MACHINE_COMMANDS: Record<string, typeof Command> = {
  "machine:list": MachineList,
  "machine:describe": MachineDescribe,
  "machine:create": MachineCreate,
  "machine:update": MachineUpdate,
  "machine:delete": MachineDelete,
  "machine:reinstall": MachineReinstall,
  "machine:consolepassword": MachineConsolePassword,
  "machine:console": MachineConsole,
  "machine:logs": MachineLogs,
  "machine:issues": MachineIssues,
  "machine:commands": MachineCommands,
  "machine:bmc": MachineBmc,
  "machine:power:on": powerCommand("machine:power:on", P.ON, B.POWER_ON, "power a machine on"),
  "machine:power:off": powerCommand("machine:power:off", P.OFF, B.POWER_OFF, "power a machine off"),
  "machine:power:reset": powerCommand("machine:power:reset", P.RESET, B.RESET, "reset a machine"),
  "machine:power:cycle": powerCommand("machine:power:cycle", P.CYCLE, B.CYCLE, "power-cycle a machine"),
  "machine:bootdevice:pxe": bootDeviceCommand("machine:bootdevice:pxe", D.PXE, B.BOOT_PXE, "boot from the network next"),
  "machine:bootdevice:disk": bootDeviceCommand("machine:bootdevice:disk", D.DISK, B.BOOT_DISK, "boot from disk next"),
  "machine:bootdevice:bios": bootDeviceCommand("machine:bootdevice:bios", D.BIOS, B.BOOT_BIOS, "boot into the firmware setup next"),
  "machine:power:bios": bmcCommand("machine:power:bios", B.BOOT_BIOS, "boot into the firmware setup next"),
  "machine:power:disk": bmcCommand("machine:power:disk", B.BOOT_DISK, "boot from disk next"),
  "machine:power:pxe": bmcCommand("machine:power:pxe", B.BOOT_PXE, "boot from the network next"),
  "machine:identify:on": bmcCommand("machine:identify:on", B.LED_ON, "switch the identify LED on"),
  "machine:identify:off": bmcCommand("machine:identify:off", B.LED_OFF, "switch the identify LED off"),
  "machine:lock": stateCommand("machine:lock", State.LOCKED, "lock a machine: it cannot be freed"),
  "machine:reserve": stateCommand("machine:reserve", State.TAINTED, "reserve (taint) a machine: held back from allocation, by size or by id", ["taint"]),
  "firewall:list": FirewallList,
  "firewall:describe": FirewallDescribe,
  "firewall:create": FirewallCreate,
};
