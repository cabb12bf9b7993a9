import type { MachineServiceCreateRequest } from "../../gen/metal/api/v1/machine_pb.js";
import type { ProjectDirectory } from "../auth/project-directory.js";
import { allocationTopic, type FanoutBus } from "../bus/fanout.js";
import { machineRoleFromProto } from "../convert/machine.js";
import { inTransaction, type Db } from "../db/database.js";
import type { IpRow, MachineEventsRow, MachineRow, NetworkRow, PartitionRow, StoredAllocation } from "../db/schema/index.js";
import { machines } from "../db/schema/index.js";
import { layoutDiskProblems, layoutMatches, selectLayout } from "../domain/filesystem-layout.js";
import { containsAddress, parseAddress, parsePrefix, type Prefix } from "../domain/ip-math.js";
import { machineTags, SystemTag } from "../domain/machine-tags.js";
import { IpKind, NetworkKind } from "../domain/network.js";
import { chooseRack, reservationsAllow } from "../domain/placement.js";
import { exhausted, failedPrecondition, invalidArgument, notFound } from "../errors.js";
import { uuidv7 } from "../ids.js";
import { ipRepository } from "../repositories/ip-repository.js";
import { acquireAsn, acquireIps, randomAsn, type IpRequest } from "../repositories/ipam-repository.js";
import { machineAllocationRepository as allocations, machineRepository } from "../repositories/machine-repository.js";
import { networkRepository as networks, quotaRepository as quotas } from "../repositories/network-repository.js";
import { lockById } from "../repositories/versioned.js";
import type { ReferenceLookups } from "./reference-lookups.js";

const IMAGE_FEATURE = { machine: 1, firewall: 2 } as const;

export interface AllocationDeps {
  db: Db<any>;
  projects: ProjectDirectory;
  bus: FanoutBus;
  /** Reference reads shared by concurrent allocations. */
  refs: ReferenceLookups;
}

/** The primary network must be the project's own private network in the partition; others must be usable by it. */
function checkNetworks(nets: NetworkRow[], project: string, partition: string): void {
  const [primary, ...others] = nets;
  if (!primary || primary.kind !== NetworkKind.CHILD || primary.project !== project || primary.partitionId !== partition) {
    throw invalidArgument(`invalid request: networks[0]: must be a private network of project "${project}" in partition "${partition}"`);
  }
  others.forEach((n, i) => {
    const usable = n.kind === NetworkKind.EXTERNAL || n.kind === NetworkKind.CHILD_SHARED || (n.kind === NetworkKind.CHILD && n.project === project);
    if (!usable) throw invalidArgument(`invalid request: networks[${i + 1}]: network "${n.id}" cannot be attached to a machine of project "${project}"`);
  });
}

/** A firewall also joins the partition's underlay, which must exist exactly once. */
async function underlayOf(db: Db<any>, partition: string): Promise<NetworkRow> {
  const found = (await networks.list(db, { kind: NetworkKind.UNDERLAY, partition }, { limit: 2, after: undefined })).items;
  if (found.length !== 1) throw failedPrecondition(`partition "${partition}" has ${found.length} underlay networks; a firewall needs exactly one`);
  return found[0]!;
}

/**
 * The static IPs the request names, locked: each must be a static IP of the
 * project, attached to no machine, in one of the machine's networks.
 */
async function lockStaticIps(tx: Db<any>, addresses: readonly string[], project: string, nets: readonly NetworkRow[]): Promise<IpRow[]> {
  const out: IpRow[] = [];
  for (const [i, address] of addresses.entries()) {
    const ip = await ipRepository.lockByAddress(tx, address);
    const path = `invalid request: ips[${i}]`;
    if (!ip || ip.project !== project) throw notFound("ip", address);
    if (ip.type !== IpKind.STATIC) throw invalidArgument(`${path}: ${address} is ephemeral; only static IPs can be given`);
    if (ip.machineId) throw failedPrecondition(`ip ${address} is already attached to machine "${ip.machineId}"`);
    if (!nets.some((n) => n.id === ip.networkId)) throw invalidArgument(`${path}: ${address} is in network "${ip.networkId}", which the machine is not attached to`);
    out.push(ip);
  }
  return out;
}

/** Where to look for a machine: waiting machines per rack and the project's machines there (read outside the transaction). */
interface Plan {
  racks: { rack: string; n: number }[];
  placed: { rack: string; tags: readonly string[] }[];
}

const noMachine = (req: MachineServiceCreateRequest) => exhausted(`no ${req.size} machine is waiting in partition "${req.partition}"`);

/**
 * Reads what rack spreading and size reservations need. Outside the
 * allocating transaction on purpose: it only steers the choice; the
 * candidate rule is checked again on the row that is locked.
 */
async function planAllocation({ db, refs }: AllocationDeps, req: MachineServiceCreateRequest, role: string): Promise<Plan | undefined> {
  if (req.machineId !== undefined) return undefined;
  const [load, reserved] = await Promise.all([
    refs.rackLoad(req.partition, req.size, req.project, role, req.placementTags),
    refs.reservations(req.partition, req.size),
  ]);
  const racks = load.map((r) => ({ rack: r.rack, n: r.waiting }));
  const waiting = racks.reduce((sum, r) => sum + r.n, 0);
  if (waiting === 0) throw noMachine(req);
  // Usage per project only matters when something is reserved.
  if (reserved.length > 0 && !reservationsAllow(reserved, await allocations.usedByProject(db, req.partition, req.size), req.project, waiting)) {
    throw exhausted(`the waiting ${req.size} machines in partition "${req.partition}" are reserved for other projects`);
  }
  // The project's machines per rack, as the pure rule wants them: those carrying a placement tag, and the rest.
  const placed = load.flatMap((r) => [
    ...Array.from({ length: r.mineTagged }, () => ({ rack: r.rack, tags: req.placementTags })),
    ...Array.from({ length: r.mine - r.mineTagged }, () => ({ rack: r.rack, tags: [] })),
  ]);
  return { racks, placed };
}

/** Locks the machine: the given one, or a random waiting one of the rack the plan prefers. */
async function lockMachine(tx: Db<any>, req: MachineServiceCreateRequest, plan: Plan | undefined): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }> {
  if (!plan) {
    const m = await lockById(tx, machines, "machine", req.machineId!.toLowerCase());
    if (m.allocation) throw failedPrecondition(`machine "${m.id}" is already allocated`);
    if (m.partitionId !== req.partition || m.sizeId !== req.size) {
      throw failedPrecondition(`machine "${m.id}" is not a ${req.size} machine in partition "${req.partition}"`);
    }
    if (m.state === "locked") throw failedPrecondition(`machine "${m.id}" is locked`);
    return { machine: m, events: await machineRepository.eventsOf(tx, m.id) };
  }
  // Choose a rack, lock a random machine of it; if parallel allocations hold them all, try the other racks.
  let pool = plan.racks;
  while (pool.length > 0) {
    const rack = chooseRack(pool, plan.placed, req.placementTags);
    if (rack === undefined) break;
    const locked = await allocations.lockCandidate(tx, req.partition, req.size, { rack });
    if (locked) return locked;
    pool = pool.filter((r) => r.rack !== rack);
  }
  throw noMachine(req);
}

/** The layout: the one asked for (it must be for this size and image), or the first that fits. */
async function chooseLayout(refs: ReferenceLookups, req: MachineServiceCreateRequest, image: { id: string; os: string; osVersion: string }) {
  const target = { os: image.os, version: image.osVersion };
  const all = await refs.layouts();
  if (req.filesystemLayout !== undefined) {
    const chosen = all.find((l) => l.id === req.filesystemLayout);
    if (!chosen) throw notFound("filesystem layout", req.filesystemLayout);
    if (!layoutMatches(chosen.spec.constraints, req.size, target)) {
      throw failedPrecondition(`filesystem layout "${chosen.id}" is not for size "${req.size}" and image "${image.id}"`);
    }
    return chosen;
  }
  const layout = selectLayout(all, req.size, target);
  if (!layout) throw failedPrecondition(`no filesystem layout fits size "${req.size}" and image "${image.id}"`);
  return layout;
}

/** DNS and NTP servers: the request's, else the partition's. */
const serversOf = (req: MachineServiceCreateRequest, p: PartitionRow) => ({
  dnsServers: req.dnsServers.length > 0 ? req.dnsServers : p.dnsServers,
  ntpServers: req.ntpServers.length > 0 ? req.ntpServers : p.ntpServers,
});

/**
 * Allocates a machine or firewall in ONE transaction: the machine row (taken
 * with FOR UPDATE SKIP LOCKED, so parallel allocations never pick the same
 * one), its ASN, the given static IPs, one IP per address family of every
 * network that got none of that family given, and the quota check commit
 * together or not at all. The waiting machine learns of it through the bus
 * the moment the transaction commits.
 */
export async function allocateMachine(
  deps: AllocationDeps,
  req: MachineServiceCreateRequest,
  createdBy: string,
): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }> {
  const role = machineRoleFromProto(req.role);
  if (!role) throw invalidArgument("invalid request: role: must be machine or firewall");
  // What the allocation refers to is read before the transaction and in
  // parallel, on other pool connections: the transaction then holds its
  // connection only for the writes. Whatever is deleted meanwhile cannot slip
  // through: IPs reference their prefix, so a vanished network fails the insert.
  const [quota, partition, image, nets] = await Promise.all([
    deps.projects.quotasOf(req.project),
    deps.refs.partition(req.partition),
    deps.refs.image(req.image, IMAGE_FEATURE[role]),
    Promise.all(req.networks.map((id) => deps.refs.network(id))),
    deps.refs.size(req.size),
  ]);
  if (!quota) throw notFound("project", req.project);
  checkNetworks(nets, req.project, req.partition);
  if (role === "firewall") nets.push(await underlayOf(deps.db, req.partition));
  const [layout, prefixes, , plan] = await Promise.all([
    chooseLayout(deps.refs, req, image),
    deps.refs.prefixes(nets.map((n) => n.id)),
    deps.refs.assertImageAllowed(req.size, image),
    planAllocation(deps, req, role),
  ]);
  const row = await inTransaction(deps.db, async (tx) => {
    const statics = await lockStaticIps(tx, req.ips, req.project, nets);

    const { machine, events } = await lockMachine(tx, req, plan);
    const disks = layoutDiskProblems(layout.spec, machine.hardware?.disks ?? []);
    if (disks.length > 0) throw failedPrecondition(`filesystem layout "${layout.id}" does not fit machine "${machine.id}": ${disks.join("; ")}`);
    await ipRepository.attach(
      tx,
      statics.map((s) => s.id),
      machine.id,
    );
    // Every automatic address of the allocation, asked for at once: usually one round trip for all of them.
    const wanted: { network: number; request: IpRequest }[] = [];
    const given = nets.map((n) => statics.filter((s) => s.networkId === n.id));
    for (const [i, n] of nets.entries()) {
      const parsed = (prefixes.get(n.id) ?? []).map((p) => parsePrefix(p) as Prefix);
      for (const family of [4, 6] as const) {
        const ofFamily = parsed.filter((p) => p.family === family);
        const hasGiven = given[i]!.some((s) => ofFamily.some((p) => containsAddress(p, parseAddress(s.ip)!)));
        if (ofFamily.length === 0 || hasGiven) continue;
        const template = { id: uuidv7(), networkId: n.id, project: req.project, name: req.name, description: "autoassigned", type: IpKind.EPHEMERAL, machineId: machine.id };
        wanted.push({ network: i, request: { prefixes: ofFamily, template, networkLabel: n.id } });
      }
    }
    const acquired = await acquireIps(
      tx,
      wanted.map((w) => w.request),
    );
    const attached: StoredAllocation["networks"] = nets.map((n, i) => ({
      network: n.id,
      ips: [...given[i]!.map((s) => s.ip), ...acquired.filter((_, k) => wanted[k]!.network === i).map((ip) => ip.ip)],
      vrf: n.vrf ?? 0,
      primary: i === 0,
    }));
    const allocation = (asn: number): StoredAllocation => ({
      uuid: uuidv7(),
      project: req.project,
      name: req.name,
      description: req.description,
      hostname: req.hostname || req.name || "metal",
      role,
      image: image.id,
      filesystemLayout: layout.id,
      sshKeys: req.sshKeys,
      userData: req.userData,
      asn,
      networks: attached,
      createdAt: new Date().toISOString(),
      createdBy,
      ...serversOf(req, partition),
    });
    const tags = (asn: number) => machineTags(req.tags, req.placementTags, { [SystemTag.ASN]: String(asn), [SystemTag.RACK]: machine.rackId ?? "", [SystemTag.ROLE]: role });
    // A random ASN is claimed together with the allocation; only when it was taken is one searched for.
    const guess = randomAsn();
    let allocated = await allocations.allocateClaimingAsn(tx, machine.id, allocation(guess), tags(guess));
    if (!allocated) {
      const asn = await acquireAsn(tx, machine.id);
      allocated = await allocations.allocate(tx, machine.id, allocation(asn), tags(asn));
    }
    // The quota is checked last, counting this machine, so its per-project lock is held only until commit.
    if (quota.machine !== undefined) {
      await quotas.lockProject(tx, req.project);
      if ((await allocations.countOfProject(tx, req.project)) > quota.machine) {
        throw exhausted(`project "${req.project}" has reached its quota of ${quota.machine} machine(s)`);
      }
    }
    return { machine: allocated, events };
  });
  deps.bus.publish(allocationTopic(row.machine.id));
  return row;
}
