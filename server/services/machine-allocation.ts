import type { MachineServiceCreateRequest } from "../../gen/metal/api/v1/machine_pb.js";
import type { ProjectDirectory } from "../auth/project-directory.js";
import { allocationTopic, type FanoutBus } from "../bus/fanout.js";
import { inTransaction, type Db } from "../db/database.js";
import type { MachineRow, NetworkRow, StoredAllocation } from "../db/schema/index.js";
import { selectLayout } from "../domain/filesystem-layout.js";
import { parsePrefix, type Prefix } from "../domain/ip-math.js";
import { IpKind, NetworkKind } from "../domain/network.js";
import { chooseRack, reservationsAllow } from "../domain/placement.js";
import { exhausted, failedPrecondition, invalidArgument, notFound } from "../errors.js";
import { filesystemLayoutRepository as layouts } from "../repositories/image-repository.js";
import { acquireAsn, acquireIp } from "../repositories/ipam-repository.js";
import { machineAllocationRepository as allocations } from "../repositories/machine-repository.js";
import { lockById } from "../repositories/versioned.js";
import { machines } from "../db/schema/index.js";
import { networkRepository as networks, quotaRepository as quotas } from "../repositories/network-repository.js";
import { partitionRepository as partitions } from "../repositories/partition-repository.js";
import { sizeRepository as sizes, sizeReservationRepository as reservations } from "../repositories/size-repository.js";
import { uuidv7 } from "../ids.js";
import { assertImageAllowed, lookupImage } from "./image-lookup.js";

const IMAGE_FEATURE_MACHINE = 1;

export interface AllocationDeps {
  db: Db<any>;
  projects: ProjectDirectory;
  bus: FanoutBus;
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

/** Picks the machine: the given one, or a waiting one that reservations and rack spreading allow. */
async function pickMachine(tx: Db<any>, req: MachineServiceCreateRequest): Promise<MachineRow> {
  if (req.machineId !== undefined) {
    const m = await lockById(tx, machines, "machine", req.machineId);
    if (m.allocation) throw failedPrecondition(`machine "${m.id}" is already allocated`);
    if (m.partitionId !== req.partition || m.sizeId !== req.size) {
      throw failedPrecondition(`machine "${m.id}" is not a ${req.size} machine in partition "${req.partition}"`);
    }
    if (m.state === "locked") throw failedPrecondition(`machine "${m.id}" is locked`);
    return m;
  }
  const load = await allocations.rackLoad(tx, req.partition, req.size, req.project);
  const racks = load.map((r) => ({ rack: r.rack, n: r.waiting }));
  const waiting = racks.reduce((sum, r) => sum + r.n, 0);
  const noMachine = () => exhausted(`no ${req.size} machine is waiting in partition "${req.partition}"`);
  if (waiting === 0) throw noMachine();
  const reserved = (await reservations.list(tx, { sizeId: req.size, partitionId: req.partition }, { limit: 1000, after: undefined })).items;
  // Usage per project only matters when something is reserved.
  if (reserved.length > 0 && !reservationsAllow(reserved, await allocations.usedByProject(tx, req.partition, req.size), req.project, waiting)) {
    throw exhausted(`the waiting ${req.size} machines in partition "${req.partition}" are reserved for other projects`);
  }
  // Placement tags are not stored on machines yet, so only the project's rack load counts.
  const placed = load.flatMap((r) => Array.from({ length: r.mine }, () => ({ rack: r.rack, tags: [] })));
  // Choose a rack, lock a random machine of it; if parallel allocations hold them all, try the other racks.
  let pool = racks;
  while (pool.length > 0) {
    const rack = chooseRack(pool, placed, req.placementTags);
    if (rack === undefined) break;
    const locked = await allocations.lockCandidate(tx, req.partition, req.size, { rack });
    if (locked) return locked;
    pool = pool.filter((r) => r.rack !== rack);
  }
  throw noMachine();
}

/**
 * Allocates a machine in ONE transaction: the machine row (taken with
 * FOR UPDATE SKIP LOCKED, so parallel allocations never pick the same one),
 * its ASN, one IP per address family of every network, and the quota check
 * commit together or not at all. The waiting machine learns of it through the
 * bus the moment the transaction commits.
 */
export async function allocateMachine(deps: AllocationDeps, req: MachineServiceCreateRequest, createdBy: string): Promise<MachineRow> {
  const quota = await deps.projects.quotasOf(req.project);
  if (!quota) throw notFound("project", req.project);
  const row = await inTransaction(deps.db, async (tx) => {
    await partitions.get(tx, req.partition);
    await sizes.get(tx, req.size);
    const image = await lookupImage(tx, req.image, IMAGE_FEATURE_MACHINE);
    await assertImageAllowed(tx, req.size, image);
    const layout = selectLayout(await layouts.all(tx), req.size, { os: image.os, version: image.osVersion });
    if (!layout) throw failedPrecondition(`no filesystem layout fits size "${req.size}" and image "${image.id}"`);
    const nets = await Promise.all(req.networks.map((id) => networks.get(tx, id)));
    checkNetworks(nets, req.project, req.partition);

    const machine = await pickMachine(tx, req);
    const asn = await acquireAsn(tx, machine.id);
    const prefixes = await networks.prefixesOf(tx, nets.map((n) => n.id));
    const attached: StoredAllocation["networks"] = [];
    for (const [i, n] of nets.entries()) {
      const ips: string[] = [];
      const parsed = (prefixes.get(n.id) ?? []).map((p) => parsePrefix(p) as Prefix);
      for (const family of [4, 6] as const) {
        const ofFamily = parsed.filter((p) => p.family === family);
        if (ofFamily.length === 0) continue;
        const ip = await acquireIp(
          tx,
          ofFamily,
          { id: uuidv7(), networkId: n.id, project: req.project, name: req.name, description: "autoassigned", type: IpKind.EPHEMERAL, machineId: machine.id },
          n.id,
        );
        ips.push(ip.ip);
      }
      attached.push({ network: n.id, ips, vrf: n.vrf ?? 0, primary: i === 0 });
    }
    const allocated = await allocations.allocate(tx, machine.id, {
      uuid: uuidv7(),
      project: req.project,
      name: req.name,
      description: req.description,
      hostname: req.hostname || req.name || "metal",
      role: "machine",
      image: image.id,
      filesystemLayout: layout.id,
      sshKeys: req.sshKeys,
      userData: req.userData,
      asn,
      networks: attached,
      createdAt: new Date().toISOString(),
      createdBy,
    });
    // The quota is checked last, counting this machine, so its per-project lock is held only until commit.
    if (quota.machine !== undefined) {
      await quotas.lockProject(tx, req.project);
      if ((await allocations.countOfProject(tx, req.project)) > quota.machine) {
        throw exhausted(`project "${req.project}" has reached its quota of ${quota.machine} machine(s)`);
      }
    }
    return allocated;
  });
  deps.bus.publish(allocationTopic(row.id));
  return row;
}
