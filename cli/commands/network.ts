import { fromJson } from "@bufbuild/protobuf";
import { Args, type Command, Flags } from "@oclif/core";
import * as aIp from "../../gen/metal/admin/v1/ip_pb.js";
import * as aNet from "../../gen/metal/admin/v1/network_pb.js";
import * as ip from "../../gen/metal/api/v1/ip_pb.js";
import * as net from "../../gen/metal/api/v1/network_pb.js";
import { aliasesOf, allPages, MetalCommand } from "../base.js";
import { type Column, enumLabel, enumParse, labelsOf, UsageError } from "../output.js";
import { pickForUpdate, resourceCommands } from "../resource.js";

const NETWORK = ["networks", "net"];
type Cmd = MetalCommand<typeof Command>;
const lenient = { ignoreUnknownFields: true };
const parseLabels = (l: string[] | undefined) => (l ? Object.fromEntries(l.map((kv) => [kv.split("=")[0]!, kv.split("=").slice(1).join("=")])) : undefined);

const usage = (n: net.Network) => {
  const c = n.consumption?.ipv4 ?? n.consumption?.ipv6;
  return c ? `${c.usedIps}/${c.availableIps}` : "";
};
const prefixUsage = (n: net.Network) => {
  const c = n.consumption?.ipv4 ?? n.consumption?.ipv6;
  return c && c.availablePrefixes > 0n ? `${c.usedPrefixes}/${c.availablePrefixes}` : "";
};

export const networkColumns: Column<net.Network>[] = [
  { header: "ID", value: (n) => n.id },
  { header: "Name", value: (n) => n.name },
  { header: "Project", value: (n) => n.project },
  { header: "Partition", value: (n) => n.partition },
  { header: "Type", value: (n) => enumLabel(net.NetworkTypeSchema, n.type).toLowerCase() },
  { header: "Prefixes", value: (n) => n.prefixes.join(",") },
  { header: "IPs", value: usage },
  { header: "Child Prefixes", value: prefixUsage, wide: true },
  { header: "Description", value: (n) => n.description, wide: true },
  { header: "Parent", value: (n) => n.parentNetworkId, wide: true },
  { header: "Destination Prefixes", value: (n) => n.destinationPrefixes.join(","), wide: true },
  { header: "VRF", value: (n) => (n.vrf ? String(n.vrf) : ""), wide: true },
  { header: "NAT", value: (n) => (n.nat ? "yes" : ""), wide: true },
  { header: "Labels", value: (n) => labelsOf(n.labels), wide: true },
];

async function getNetwork(c: Cmd, id: string, project?: string) {
  const p = c.project(project);
  if (p) return (await c.client(net.NetworkService).get({ id, project: p })).network!;
  return (await c.client(aNet.NetworkService).get({ id })).network!;
}

/** Admin create, update -f, apply and edit of networks of any type (super, underlay, external). */
const adminNetworks = resourceCommands({
  kind: "network",
  topic: "network",
  topicAliases: NETWORK,
  schema: net.NetworkSchema,
  columns: networkColumns,
  docId: (d) => (typeof d.id === "string" ? d.id : undefined),
  idOf: (n) => n.id,
  get: async (c, id) => (await c.client(aNet.NetworkService).get({ id })).network!,
  createFlags: {
    id: Flags.string({ description: "id (default: generated)" }),
    name: Flags.string(),
    description: Flags.string(),
    type: Flags.string({ description: "super, underlay, external (operators) " }),
    partition: Flags.string(),
    project: Flags.string(),
    prefixes: Flags.string({ multiple: true }),
    "destination-prefixes": Flags.string({ multiple: true }),
    "default-ipv4-child-length": Flags.integer(),
    "default-ipv6-child-length": Flags.integer(),
    vrf: Flags.integer(),
    nat: Flags.boolean(),
    labels: Flags.string({ multiple: true, description: "key=value" }),
  },
  createDoc: (f) => {
    if (!f.type) throw new UsageError("--type (or -f) is required");
    const doc: Record<string, unknown> = {
      id: f.id,
      name: f.name,
      description: f.description,
      partition: f.partition,
      project: f.project,
      type: net.NetworkTypeSchema.values.find((v) => v.number === enumParse(net.NetworkTypeSchema, f.type as string))!.name,
      prefixes: f.prefixes,
      destinationPrefixes: f["destination-prefixes"],
      vrf: f.vrf,
      nat: f.nat || undefined,
      labels: parseLabels(f.labels as string[] | undefined),
      defaultChildPrefixLength: f["default-ipv4-child-length"] || f["default-ipv6-child-length"] ? { ipv4: f["default-ipv4-child-length"], ipv6: f["default-ipv6-child-length"] } : undefined,
    };
    return JSON.parse(JSON.stringify(doc));
  },
  create: async (c, doc) => (await c.client(aNet.NetworkService).create(fromJson(aNet.NetworkServiceCreateRequestSchema, doc, lenient))).network!,
  update: async (c, doc, cur, version) =>
    (
      await c
        .client(aNet.NetworkService)
        .update(fromJson(aNet.NetworkServiceUpdateRequestSchema, { id: cur.id, version, ...pickForUpdate(doc, ["name", "description", "defaultChildPrefixLength"], ["destinationPrefixes", "labels"]) }, lenient))
    ).network!,
});
// Their update-from-file is an operator's; `network update ID --name ...` below is the tenant's (and also takes -f).
const adminNetworkUpdate = adminNetworks["network:update"]!;
delete adminNetworks["network:update"];

const projectFlag = Flags.string({ description: "project (default: the context's)" });

class NetworkList extends MetalCommand<typeof NetworkList> {
  static override summary = "list networks: the project's, or (operators) all matching the filters";
  static override hiddenAliases = aliasesOf("network:list", NETWORK, ["ls"]);
  static override flags = {
    project: projectFlag,
    partition: Flags.string({ description: "only in this partition (operators)" }),
    type: Flags.string({ description: "only of this type: super, underlay, external, child, child-shared (operators)" }),
    name: Flags.string({ description: "only with this name" }),
    "sort-by": Flags.string({ multiple: true }),
  };
  async run() {
    const f = this.flags;
    const project = this.project(f.project);
    let items: net.Network[];
    if (project && !f.partition && !f.type) {
      items = await allPages(async (paging) => {
        const r = await this.client(net.NetworkService).list({ project, paging });
        return { items: r.networks, next: r.nextPageToken };
      });
    } else {
      const type = f.type ? enumParse(net.NetworkTypeSchema, f.type) : net.NetworkType.UNSPECIFIED;
      items = await allPages(async (paging) => {
        const r = await this.client(aNet.NetworkService).list({ paging, project, partition: f.partition, type });
        return { items: r.networks, next: r.nextPageToken };
      });
    }
    if (f.name) items = items.filter((n) => n.name === f.name);
    this.printList(net.NetworkSchema, items, networkColumns, { sortBy: f["sort-by"] });
  }
}

class NetworkDescribe extends MetalCommand<typeof NetworkDescribe> {
  static override summary = "show a network";
  static override hiddenAliases = aliasesOf("network:describe", NETWORK, ["get"]);
  static override args = { id: Args.string({ required: true }) };
  static override flags = { project: projectFlag };
  async run() {
    this.printOne(net.NetworkSchema, await getNetwork(this, this.args.id, this.flags.project), networkColumns, "yaml");
  }
}

class NetworkAllocate extends MetalCommand<typeof NetworkAllocate> {
  static override summary = "allocate a child network for the project from the partition's super network";
  static override hiddenAliases = aliasesOf("network:allocate", NETWORK);
  static override flags = {
    project: projectFlag,
    partition: Flags.string({ required: true }),
    name: Flags.string(),
    description: Flags.string(),
    shared: Flags.boolean({ description: "other projects may attach machines (child-shared)" }),
    nat: Flags.boolean(),
    "ipv4-prefix-length": Flags.integer(),
    "ipv6-prefix-length": Flags.integer(),
    addressfamily: Flags.string({ description: "v4, v6 or dual-stack" }),
    labels: Flags.string({ multiple: true, description: "key=value" }),
  };
  async run() {
    const f = this.flags;
    const r = await this.client(net.NetworkService).create({
      project: this.requireProject(f.project),
      partition: f.partition,
      name: f.name ?? "",
      description: f.description ?? "",
      shared: f.shared,
      nat: f.nat,
      length: f["ipv4-prefix-length"] || f["ipv6-prefix-length"] ? { ipv4: f["ipv4-prefix-length"], ipv6: f["ipv6-prefix-length"] } : undefined,
      addressFamily: f.addressfamily ? enumParse(net.AddressFamilySchema, f.addressfamily) : net.AddressFamily.UNSPECIFIED,
      labels: parseLabels(f.labels) ?? {},
    });
    this.printOne(net.NetworkSchema, r.network!, networkColumns);
  }
}

class NetworkUpdate extends MetalCommand<typeof NetworkUpdate> {
  static override summary = "change a project network (name, description, labels, shared); -f updates any network (operators)";
  static override hiddenAliases = aliasesOf("network:update", NETWORK);
  static override args = { id: Args.string({ description: "network id (not with -f)" }) };
  static override flags = {
    project: projectFlag,
    file: Flags.string({ char: "f", description: "YAML/JSON documents: operator update of any network" }),
    name: Flags.string(),
    description: Flags.string(),
    labels: Flags.string({ multiple: true, description: "replace labels, key=value" }),
    shared: Flags.boolean({ allowNo: true }),
  };
  async run() {
    const f = this.flags;
    if (f.file) {
      // The operator's generic update, with the same argv.
      await (adminNetworkUpdate as unknown as { run(argv: string[], config: unknown): Promise<unknown> }).run(this.argv, this.config);
      return;
    }
    if (!this.args.id) throw new UsageError("a network id (or -f) is required");
    const project = this.requireProject(f.project);
    const cur = (await this.client(net.NetworkService).get({ id: this.args.id, project })).network!;
    const r = await this.client(net.NetworkService).update({
      id: cur.id,
      project,
      version: cur.meta?.version ?? 0n,
      name: f.name,
      description: f.description,
      labels: f.labels ? { values: parseLabels(f.labels)! } : undefined,
      shared: f.shared,
    });
    this.printOne(net.NetworkSchema, r.network!, networkColumns);
  }
}

class NetworkDelete extends MetalCommand<typeof NetworkDelete> {
  static override summary = "free a project network; without a project (operators) delete any network";
  static override hiddenAliases = aliasesOf("network:delete", NETWORK, ["free", "rm"]);
  static override args = { id: Args.string({ required: true }) };
  static override flags = { project: projectFlag };
  async run() {
    const project = this.project(this.flags.project);
    const n = project ? (await this.client(net.NetworkService).delete({ id: this.args.id, project })).network! : (await this.client(aNet.NetworkService).delete({ id: this.args.id })).network!;
    this.printOne(net.NetworkSchema, n, networkColumns);
  }
}

// ---------------------------------------------------------------- IPs

const ipColumns: Column<ip.IP>[] = [
  { header: "IP", value: (i) => i.ip },
  { header: "Name", value: (i) => i.name },
  { header: "Network", value: (i) => i.network },
  { header: "Project", value: (i) => i.project },
  { header: "Type", value: (i) => enumLabel(ip.IpTypeSchema, i.type).toLowerCase() },
  { header: "Machine", value: (i) => i.machineId },
  { header: "ID", value: (i) => i.id, wide: true },
  { header: "Description", value: (i) => i.description, wide: true },
  { header: "Labels", value: (i) => labelsOf(i.labels), wide: true },
];

class IpList extends MetalCommand<typeof IpList> {
  static override summary = "list IPs of the project (operators: of all projects)";
  static override hiddenAliases = aliasesOf("network:ip:list", NETWORK, ["ls"]).concat(["ip:list", "ips:list", "ip:ls", "ips:ls"]);
  static override flags = { project: projectFlag, network: Flags.string({ description: "only in this network" }), "sort-by": Flags.string({ multiple: true }) };
  async run() {
    const f = this.flags;
    const project = this.project(f.project);
    const items = project
      ? await allPages(async (paging) => {
          const r = await this.client(ip.IPService).list({ project, network: f.network, paging });
          return { items: r.ips, next: r.nextPageToken };
        })
      : await allPages(async (paging) => {
          const r = await this.client(aIp.IPService).list({ network: f.network, paging });
          return { items: r.ips, next: r.nextPageToken };
        });
    this.printList(ip.IPSchema, items, ipColumns, { sortBy: f["sort-by"] });
  }
}

const ipIdArg = { id: Args.string({ required: true, description: "IP id or address" }) };

/** IPs are named by id; people type addresses, so an address is looked up in the project first. */
async function ipIdOf(c: Cmd, idOrAddress: string, project: string): Promise<string> {
  if (!/^[0-9.]+$|:/.test(idOrAddress)) return idOrAddress;
  const all = await allPages(async (paging) => {
    const r = await c.client(ip.IPService).list({ project, paging });
    return { items: r.ips, next: r.nextPageToken };
  });
  return all.find((i) => i.ip === idOrAddress)?.id ?? idOrAddress;
}

class IpDescribe extends MetalCommand<typeof IpDescribe> {
  static override summary = "show an IP";
  static override hiddenAliases = aliasesOf("network:ip:describe", NETWORK, ["get"]).concat(["ip:describe", "ips:describe"]);
  static override args = ipIdArg;
  static override flags = { project: projectFlag };
  async run() {
    const project = this.requireProject(this.flags.project);
    this.printOne(ip.IPSchema, (await this.client(ip.IPService).get({ id: await ipIdOf(this, this.args.id, project), project })).ip!, ipColumns, "yaml");
  }
}

class IpCreate extends MetalCommand<typeof IpCreate> {
  static override summary = "allocate an IP in a network (optionally a given address)";
  static override hiddenAliases = aliasesOf("network:ip:create", NETWORK, ["allocate"]).concat(["ip:create", "ip:allocate", "ips:create"]);
  static override flags = {
    project: projectFlag,
    network: Flags.string({ required: true }),
    ipaddress: Flags.string({ description: "this address instead of the next free one" }),
    name: Flags.string(),
    description: Flags.string(),
    type: Flags.string({ description: "ephemeral (default) or static", default: "ephemeral" }),
    addressfamily: Flags.string({ description: "v4 or v6 (dual-stack networks)" }),
    labels: Flags.string({ multiple: true, description: "key=value" }),
  };
  async run() {
    const f = this.flags;
    const r = await this.client(ip.IPService).create({
      project: this.requireProject(f.project),
      network: f.network,
      ip: f.ipaddress,
      name: f.name ?? "",
      description: f.description ?? "",
      type: enumParse(ip.IpTypeSchema, f.type),
      addressFamily: f.addressfamily ? enumParse(net.AddressFamilySchema, f.addressfamily) : net.AddressFamily.UNSPECIFIED,
      labels: parseLabels(f.labels) ?? {},
    });
    this.printOne(ip.IPSchema, r.ip!, ipColumns);
  }
}

class IpUpdate extends MetalCommand<typeof IpUpdate> {
  static override summary = "change an IP's name, description, labels or type (ephemeral -> static keeps it)";
  static override hiddenAliases = aliasesOf("network:ip:update", NETWORK).concat(["ip:update", "ips:update"]);
  static override args = ipIdArg;
  static override flags = {
    project: projectFlag,
    name: Flags.string(),
    description: Flags.string(),
    type: Flags.string({ description: "ephemeral or static" }),
    labels: Flags.string({ multiple: true, description: "replace labels, key=value" }),
  };
  async run() {
    const f = this.flags;
    const project = this.requireProject(f.project);
    const id = await ipIdOf(this, this.args.id, project);
    const cur = (await this.client(ip.IPService).get({ id, project })).ip!;
    const r = await this.client(ip.IPService).update({
      id,
      project,
      version: cur.meta?.version ?? 0n,
      name: f.name,
      description: f.description,
      type: f.type ? enumParse(ip.IpTypeSchema, f.type) : ip.IpType.UNSPECIFIED,
      labels: f.labels ? { values: parseLabels(f.labels)! } : undefined,
    });
    this.printOne(ip.IPSchema, r.ip!, ipColumns);
  }
}

class IpDelete extends MetalCommand<typeof IpDelete> {
  static override summary = "free an IP";
  static override hiddenAliases = aliasesOf("network:ip:delete", NETWORK, ["free", "rm"]).concat(["ip:delete", "ip:free", "ips:delete"]);
  static override args = ipIdArg;
  static override flags = { project: projectFlag };
  async run() {
    const project = this.requireProject(this.flags.project);
    const r = await this.client(ip.IPService).delete({ id: await ipIdOf(this, this.args.id, project), project });
    this.printOne(ip.IPSchema, r.ip!, ipColumns);
  }
}

export const NETWORK_COMMANDS: Record<string, typeof Command> = {
  ...adminNetworks,
  "network:list": NetworkList,
  "network:describe": NetworkDescribe,
  "network:allocate": NetworkAllocate,
  "network:update": NetworkUpdate,
  "network:delete": NetworkDelete,
  "network:ip:list": IpList,
  "network:ip:describe": IpDescribe,
  "network:ip:create": IpCreate,
  "network:ip:update": IpUpdate,
  "network:ip:delete": IpDelete,
};
