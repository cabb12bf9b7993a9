import type { ConnectError } from "@connectrpc/connect";
import type { MachineServiceCreateRequest } from "../../../gen/metal/api/v1/machine_pb.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import { allocationTopic, type FanoutBus } from "../../bus/fanout.js";
import { machineRoleFromProto } from "../../convert/machine.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import type { IpRow, MachineEventsRow, MachineRow, NetworkRow, PartitionRow, StoredAllocation } from "../../db/schema/index.js";
import { noteCreated } from "../../db/transaction-hook.js";
import { refusalText, whyNotCandidate } from "../../domain/allocation-candidate.js";
import { layoutDiskProblems, layoutMatches, selectLayout } from "../../domain/filesystem-layout.js";
import { containsAddress, type Prefix, parseAddress, parsePrefix } from "../../domain/ip-math.js";
import { machineTags, SystemTag } from "../../domain/machine-tags.js";
import { IpKind, mayUseNetwork, NetworkKind } from "../../domain/network.js";
import { chooseRack, reservationsAllow } from "../../domain/placement.js";
import { inProjectScope, type ProjectScope } from "../../domain/project-scope.js";
import { exhausted, failedPrecondition, invalidArgument, notFound } from "../../errors.js";
import { uuidv7 } from "../../ids.js";
import { type BusinessEvents, outcomeOf } from "../../metrics/events.js";
import { ipRepository } from "../../repositories/ip-repository.js";
import { acquireAsn, acquireIps, type IpRequest, randomAsn } from "../../repositories/ipam-repository.js";
import { machineAllocationRepository as allocations, machineRepository } from "../../repositories/machine-repository.js";
import { networkRepository as networks, quotaRepository as quotas } from "../../repositories/network-repository.js";
import { sizeReservationRepository as sizeReservations } from "../../repositories/size-repository.js";
import { tenantIpRepository as tenantIps } from "../../repositories/tenant/ip-repository.js";
import { type AllocationReferences, referenceHolds } from "../../repositories/usage-repository.js";
import type { ReferenceLookups } from "./reference-lookups.js";

const IMAGE_FEATURE = { machine: 1, firewall: 2 } as const;

export interface AllocationDeps {
  db: DbHandle;
  projects: ProjectDirectory;
  bus: FanoutBus;
  /** Reference reads shared by concurrent allocations. */
  refs: ReferenceLookups;
  /** Counts every allocation's outcome for /metrics. */
  events?: BusinessEvents;
}

/**
 * The primary network must be the project's own private network in the
 * partition; others must be usable by it. Another project's private network
 * reads as one that does not exist: outsiders get one answer.
 */
function checkNetworks(nets: NetworkRow[], ids: readonly string[], project: string, partition: string): void {
  // What the project may not use reads as unknown, like an id that does not exist.
  nets.forEach((n, i) => {
    if (!mayUseNetwork(n, project)) throw notFound("network", ids[i]!);
  });
  const [primary] = nets;
  if (!primary || primary.kind !== NetworkKind.CHILD || primary.project !== project || primary.partitionId !== partition) {
    throw invalidArgument(`invalid request: networks[0]: must be a private network of project "${project}" in partition "${partition}"`);
  }
}

/** A firewall also joins the partition's underlay, which must exist exactly once. */
async function underlayOf(db: DbHandle, partition: string): Promise<NetworkRow> {
  const found = (await networks.list(db, { kind: NetworkKind.UNDERLAY, partition }, { limit: 2, after: undefined })).items;
  if (found.length !== 1) throw failedPrecondition(`partition "${partition}" has ${found.length} underlay networks; a firewall needs exactly one`);
  return found[0]!;
}

/**
 * The static IPs the request names, locked: each must be a static IP of the
 * project, attached to no machine, in one of the machine's networks.
 */
async function lockStaticIps(tx: DbHandle, scope: ProjectScope, addresses: readonly string[], nets: readonly NetworkRow[]): Promise<IpRow[]> {
  const out: IpRow[] = [];
  for (const [i, address] of addresses.entries()) {
    const ip = await tenantIps.lockByAddress(tx, scope, address);
    const path = `invalid request: ips[${i}]`;
    if (!ip) throw notFound("ip", address);
    if (ip.type !== IpKind.STATIC) throw invalidArgument(`${path}: ${address} is ephemeral; only static IPs can be given`);
    if (ip.machineId) throw failedPrecondition(`ip ${address} is already attached to machine "${ip.machineId}"`);
    if (!nets.some((n) => n.id === ip.networkId)) throw invalidArgument(`${path}: ${address} is in network "${ip.networkId}", which the machine is not attached to`);
    out.push(ip);
  }
  return out;
}

/** Where to look for a machine (by size: waiting machines per rack and the project's machines there) and whether reservations apply. */
interface Plan {
  racks: { rack: string; n: number }[];
  placed: { rack: string; tags: readonly string[] }[];
  /** Size reservations exist in the partition and size: the allocation counts under the pool lock. */
  reserved: boolean;
}

const quotaReached = (project: string, max: number) => exhausted(`project "${project}" has reached its quota of ${max} machine(s)`);
const noMachine = (req: MachineServiceCreateRequest) => exhausted(`no ${req.size} machine is waiting in partition "${req.partition}"`);
const reservedForOthers = (req: MachineServiceCreateRequest) => exhausted(`the waiting ${req.size} machines in partition "${req.partition}" are reserved for other projects`);

/**
 * Reads what rack spreading needs and whether size reservations exist.
 * Outside the allocating transaction on purpose: it only steers the choice
 * (and refuses at once when nothing waits); the candidate rule, the quota
 * and the reservations are checked again inside it.
 */
async function planAllocation({ refs }: AllocationDeps, req: MachineServiceCreateRequest, role: string): Promise<Plan> {
  const byId = req.machineId !== undefined;
  const [load, reservations] = await Promise.all([byId ? Promise.resolve([]) : refs.rackLoad(req.partition, req.size, req.project, role, req.placementTags), refs.reservations(req.partition, req.size)]);
  const racks = load.map((r) => ({ rack: r.rack, n: r.waiting }));
  if (!byId && racks.every((r) => r.n === 0)) throw noMachine(req);
  // The project's machines per rack, as the pure rule wants them: those carrying a placement tag, and the rest.
  const placed = load.flatMap((r) => [
    ...Array.from({ length: r.mineTagged }, () => ({ rack: r.rack, tags: req.placementTags })),
    ...Array.from({ length: r.mine - r.mineTagged }, () => ({ rack: r.rack, tags: [] })),
  ]);
  return { racks, placed, reserved: reservations.length > 0 };
}

/**
 * The project's machine quota, checked BEFORE any machine is locked: under
 * the project's lock (held to commit, so the count and this allocation stay
 * consistent), an allocation that would exceed it is refused without ever
 * holding a waiting machine another project could have had. Only projects
 * with a machine quota take the lock.
 */
async function holdQuota(tx: DbHandle, project: string, max: number | undefined): Promise<void> {
  if (max === undefined) return;
  await quotas.lockProject(tx, project);
  if ((await allocations.countOfProject(tx, project)) >= max) throw quotaReached(project, max);
}

/**
 * Size reservations of other projects, for allocation by size and by id
 * alike. Called with the partition and size's pool lock held (taken before
 * the machine was locked) and the machine locked: what is left after this
 * allocation must still cover what others have reserved and not used.
 */
async function checkReservations(tx: DbHandle, req: MachineServiceCreateRequest): Promise<void> {
  const reservations = await sizeReservations.forSizeIn(tx, req.size, req.partition);
  const used = await allocations.usedByProject(tx, req.partition, req.size);
  const available = await allocations.candidateCount(tx, req.partition, req.size);
  if (!reservationsAllow(reservations, used, req.project, available)) throw reservedForOthers(req);
}

/** Why the machine named by id was not locked as a candidate; another project's machine reads as unknown. */
async function notCandidate(tx: DbHandle, req: MachineServiceCreateRequest, id: string): Promise<ConnectError> {
  const found = await machineRepository.find(tx, id);
  const want = { project: req.project, partition: req.partition, size: req.size };
  const facts = found && { ...found.machine, allocated: found.machine.allocation !== null, liveliness: found.events?.liveliness };
  const why = whyNotCandidate(facts, want, new Date());
  if (why.kind === "unknown") return notFound("machine", id);
  return why.kind === "busy" ? exhausted(refusalText(id, why, want)) : failedPrecondition(refusalText(id, why, want));
}

/** Locks the machine by the one candidate rule: the given one, or a random waiting one of the rack the plan prefers. */
async function lockMachine(tx: DbHandle, req: MachineServiceCreateRequest, plan: Plan, refs: AllocationReferences): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }> {
  if (req.machineId !== undefined) {
    const id = req.machineId.toLowerCase();
    const locked = await allocations.lockCandidate(tx, refs, { id });
    if (locked) return locked;
    // Nothing was locked: first whether a reference vanished meanwhile (NotFound), then why the machine is no candidate.
    await referenceHolds.allocation(tx, refs);
    throw await notCandidate(tx, req, id);
  }
  // Choose a rack, lock a random machine of it; if parallel allocations hold them all, try the other racks.
  // The first pass skips locked machines, so parallel allocations do not queue behind each other. Row
  // locks are also held briefly by event batches and lease renewals, which may hold every waiting
  // machine of a small partition at once: before answering "none waiting", a second pass waits for them.
  for (const pass of ["skip locked", "wait"] as const) {
    let pool = plan.racks;
    while (pool.length > 0) {
      const rack = chooseRack(pool, plan.placed, req.placementTags);
      if (rack === undefined) break;
      const locked = pass === "skip locked" ? await allocations.lockCandidate(tx, refs, { rack }) : await allocations.lockCandidateWaiting(tx, refs, rack);
      if (locked) return locked;
      pool = pool.filter((r) => r.rack !== rack);
    }
  }
  await referenceHolds.allocation(tx, refs);
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
 * Allocates a machine or firewall in ONE transaction: the quota check (first,
 * before any machine is held), the machine row (by size or by id, through the
 * one candidate rule; by size with FOR UPDATE SKIP LOCKED, so parallel
 * allocations never pick the same one), size reservations, its ASN, the given
 * static IPs and one IP per address family of every network that got none of
 * that family given commit together or not at all. The waiting machine
 * learns of it through the bus the moment the transaction commits.
 */
export async function allocateMachine(deps: AllocationDeps, scope: ProjectScope, req: MachineServiceCreateRequest, createdBy: string): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }> {
  const counted = { partition: "", size: "" };
  try {
    const row = await allocate(deps, scope, req, createdBy, counted);
    deps.events?.allocation({ partition: row.machine.partitionId ?? "", size: row.machine.sizeId ?? "", outcome: outcomeOf() });
    return row;
  } catch (err) {
    // Labelled by partition and size only once both proved to exist: a request cannot mint series.
    deps.events?.allocation({ ...counted, outcome: outcomeOf(err) });
    throw err;
  }
}

async function allocate(
  deps: AllocationDeps,
  scope: ProjectScope,
  req: MachineServiceCreateRequest,
  createdBy: string,
  counted: { partition: string; size: string },
): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }> {
  // The machine goes to req.project: it has to be one of the projects the call may write to.
  if (!inProjectScope(scope, req.project)) throw notFound("project", req.project);
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
  counted.partition = req.partition;
  counted.size = req.size;
  checkNetworks(nets, req.networks, req.project, req.partition);
  if (role === "firewall") nets.push(await underlayOf(deps.db, req.partition));
  const [layout, prefixes, , plan, held] = await Promise.all([
    chooseLayout(deps.refs, req, image),
    deps.refs.prefixes(nets.map((n) => n.id)),
    deps.refs.assertImageAllowed(req.size, image),
    planAllocation(deps, req, role),
    quota.machine === undefined ? undefined : allocations.countOfProject(deps.db, req.project),
  ]);
  // A project already at its quota is refused here, without queueing for its lock (checked again under it).
  if (quota.machine !== undefined && held! >= quota.machine) throw quotaReached(req.project, quota.machine);
  const row = await inTransaction(deps.db, async (tx) => {
    // Locks in one order everywhere: project quota, size pool, static IPs, machine.
    await holdQuota(tx, req.project, quota.machine);
    if (plan.reserved) await allocations.lockSizePool(tx, req.partition, req.size);
    const statics = await lockStaticIps(tx, scope, req.ips, nets);
    // Locking the machine also holds what the allocation refers to FOR KEY SHARE until commit: a concurrent delete
    // of any of them waits for this allocation and then counts it, or commits first and this answers NotFound.
    const refs = { partition: req.partition, size: req.size, image: image.id, filesystemLayout: layout.id };
    const { machine, events } = await lockMachine(tx, req, plan, refs);
    if (plan.reserved) await checkReservations(tx, req);
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
    // The audit entry names the machine taken and the addresses it got (the request names neither).
    noteCreated(machine.id, ...acquired.map((ip) => ip.id));
    return { machine: allocated, events };
  });
  deps.bus.publish(allocationTopic(row.machine.id));
  return row;
}
