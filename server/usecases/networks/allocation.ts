import type { NetworkServiceCreateRequest as AdminCreate } from "../../../gen/metal/admin/v1/network_pb.js";
import type { IPServiceCreateRequest } from "../../../gen/metal/api/v1/ip_pb.js";
import type { NetworkServiceCreateRequest } from "../../../gen/metal/api/v1/network_pb.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import type { IpRow, NetworkRow } from "../../db/schema/index.js";
import { noteCreated } from "../../db/transaction-hook.js";
import { contains, containsAddress, type Family, formatPrefix, type Prefix, parseAddress, parsePrefix } from "../../domain/ip-math.js";
import { childPlan, FamilyChoice, IpKind, NetworkKind } from "../../domain/network.js";
import { inProjectScope, type ProjectScope } from "../../domain/project-scope.js";
import { exhausted, failedPrecondition, invalidArgument, notFound, taken } from "../../errors.js";
import { uuidv7 } from "../../ids.js";
import { acquireChildPrefix, acquireIp, acquireSpecificChildPrefix, acquireSpecificIp, acquireSpecificVrf, acquireVrf, addTopLevelPrefix, releaseIp, releaseVrf } from "../../repositories/ipam-repository.js";
import { networkRepository as networks, quotaRepository as quotas } from "../../repositories/network-repository.js";
import { tenantIpRepository as tenantIps } from "../../repositories/tenant/ip-repository.js";
import { tenantNetworkRepository as tenantNetworks } from "../../repositories/tenant/network-repository.js";
import { referenceHolds } from "../../repositories/usage-repository.js";

/**
 * The network and IP use cases. Each runs in ONE transaction: the network row,
 * its prefixes, its VRF, the quota check and the IPs commit together or not
 * at all, so a failure leaks nothing (the original leaked IPAM prefixes when
 * a later step failed).
 */

const prefixesOf = (cidrs: readonly string[]) => cidrs.map((c) => parsePrefix(c) as Prefix);

async function projectQuotas(projects: ProjectDirectory, project: string) {
  const q = await projects.quotasOf(project);
  if (!q) throw notFound("project", project);
  return q;
}

/** Creates a super, underlay or external network with its prefixes (and VRF, if asked). */
export async function createOperatorNetwork(db: DbHandle, projects: ProjectDirectory, req: AdminCreate): Promise<NetworkRow> {
  if (req.project !== "" && !(await projects.tenantOf(req.project))) throw notFound("project", req.project);
  return inTransaction(db, async (tx) => {
    if (req.partition !== "") await referenceHolds.partition(tx, req.partition);
    if (req.type === NetworkKind.SUPER || req.type === NetworkKind.UNDERLAY) {
      const existing = await networks.lockKindInPartition(tx, req.type, req.partition);
      if (existing.length > 0) {
        const kind = req.type === NetworkKind.SUPER ? "super" : "underlay";
        throw taken(`partition "${req.partition}" already has a ${kind} network ("${existing[0]!.id}"); there is one per partition`);
      }
    }
    const row = await networks.create(tx, {
      id: req.id,
      name: req.name,
      description: req.description,
      kind: req.type,
      partitionId: req.partition || null,
      project: req.project || null,
      vrf: req.vrf ?? null,
      defaultChildLengthV4: req.defaultChildPrefixLength?.ipv4 ?? null,
      defaultChildLengthV6: req.defaultChildPrefixLength?.ipv6 ?? null,
      nat: req.nat,
      destinationPrefixes: req.destinationPrefixes,
      labels: req.labels,
    });
    if (req.vrf !== undefined && !(await acquireSpecificVrf(tx, req.vrf, row.id))) throw taken(`vrf ${req.vrf} is already in use`);
    for (const p of prefixesOf(req.prefixes)) {
      if (!(await addTopLevelPrefix(tx, p, row.id))) {
        const owner = await networks.overlapping(tx, formatPrefix(p));
        throw taken(`prefix ${formatPrefix(p)} overlaps a prefix of network "${owner ?? "unknown"}"`);
      }
    }
    return row;
  });
}

/** Deletes an operator network: refused while child networks or IPs exist. */
export async function deleteOperatorNetwork(db: DbHandle, id: string): Promise<{ row: NetworkRow; prefixes: string[] }> {
  return inTransaction(db, async (tx) => {
    const row = await networks.lock(tx, id);
    const kids = await networks.childNetworkCount(tx, id);
    if (kids > 0) throw failedPrecondition(`network "${id}" still has ${kids} child network(s)`);
    const used = await networks.ipCount(tx, id);
    if (used > 0) throw failedPrecondition(`network "${id}" still has ${used} allocated IP(s)`);
    const prefixes = (await networks.prefixesOf(tx, [id])).get(id) ?? [];
    if (row.vrf !== null) await releaseVrf(tx, row.vrf);
    await networks.delete(tx, id);
    return { row, prefixes };
  });
}

/** Allocates a child network of the partition's super network for a project. */
export async function allocateChildNetwork(db: DbHandle, projects: ProjectDirectory, req: NetworkServiceCreateRequest): Promise<NetworkRow> {
  const quota = await projectQuotas(projects, req.project);
  return inTransaction(db, async (tx) => {
    const supers = await networks.lockKindInPartition(tx, NetworkKind.SUPER, req.partition);
    const parent = supers[0];
    if (!parent) throw failedPrecondition(`partition "${req.partition}" has no super network to allocate from`);
    const parentPrefixes = prefixesOf((await networks.prefixesOf(tx, [parent.id])).get(parent.id) ?? []);
    if (req.prefixes.length > 0) return allocateGivenChildPrefixes(tx, parent, parentPrefixes, req, quota.network);
    const planned = childPlan(
      parentPrefixes,
      { ipv4: parent.defaultChildLengthV4 ?? undefined, ipv6: parent.defaultChildLengthV6 ?? undefined },
      { ipv4: req.length?.ipv4, ipv6: req.length?.ipv6 },
      req.addressFamily,
    );
    if (!planned.ok) throw invalidArgument(`invalid request: ${planned.problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`);
    const row = await newChildNetwork(tx, parent, req, quota.network);
    for (const { family, length } of planned.plan) {
      let got: Prefix | undefined;
      for (const p of parentPrefixes.filter((x) => x.family === family)) {
        got = await acquireChildPrefix(tx, p, length, row.id);
        if (got) break;
      }
      if (!got) throw exhausted(`super network "${parent.id}" has no free IPv${family} /${length} left`);
    }
    return row;
  });
}

/** The child network row for a tenant request, its VRF claimed; quota checked under the project lock. */
async function newChildNetwork(tx: DbHandle, parent: NetworkRow, req: NetworkServiceCreateRequest, networkQuota: number | undefined): Promise<NetworkRow> {
  await quotas.lockProject(tx, req.project);
  if (networkQuota !== undefined && (await quotas.networksOf(tx, req.project)) >= networkQuota) {
    throw exhausted(`project "${req.project}" has reached its quota of ${networkQuota} network(s)`);
  }
  const id = uuidv7();
  noteCreated(id);
  const vrf = await acquireVrf(tx, id);
  return networks.create(tx, {
    id,
    name: req.name,
    description: req.description,
    kind: req.shared ? NetworkKind.CHILD_SHARED : NetworkKind.CHILD,
    partitionId: req.partition,
    project: req.project,
    parentNetworkId: parent.id,
    vrf,
    nat: req.nat,
    labels: req.labels,
  });
}

/** A child network with exactly the prefixes the request names, each inside the super network. */
async function allocateGivenChildPrefixes(tx: DbHandle, parent: NetworkRow, parentPrefixes: Prefix[], req: NetworkServiceCreateRequest, networkQuota?: number): Promise<NetworkRow> {
  const wanted = prefixesOf(req.prefixes);
  const parents = wanted.map((w, i) => {
    const container = parentPrefixes.find((p) => contains(p, w) && w.length > p.length);
    if (!container) {
      throw invalidArgument(`invalid request: prefixes[${i}]: ${formatPrefix(w)} is not inside super network "${parent.id}" (${parentPrefixes.map(formatPrefix).join(", ")})`);
    }
    return container;
  });
  const row = await newChildNetwork(tx, parent, req, networkQuota);
  for (const [i, w] of wanted.entries()) {
    if (!(await acquireSpecificChildPrefix(tx, parents[i]!, w, row.id))) throw taken(`prefix ${formatPrefix(w)} overlaps a network already allocated`);
  }
  return row;
}

/** Frees a project's child network: refused while IPs are allocated in it. */
export async function freeChildNetwork(db: DbHandle, scope: ProjectScope, id: string): Promise<{ row: NetworkRow; prefixes: string[] }> {
  return inTransaction(db, async (tx) => {
    const row = await tenantNetworks.lockOwned(tx, scope, id);
    const used = await networks.ipCount(tx, id);
    if (used > 0) throw failedPrecondition(`network "${id}" still has ${used} allocated IP(s); free them first`);
    const prefixes = (await networks.prefixesOf(tx, [id])).get(id) ?? [];
    if (row.vrf !== null) await releaseVrf(tx, row.vrf);
    await tenantNetworks.deleteOwned(tx, scope, id);
    return { row, prefixes };
  });
}

/** Allocates an IP (a given one or a free one of the chosen family) in a network for a project. */
export async function allocateIp(db: DbHandle, projects: ProjectDirectory, scope: ProjectScope, req: IPServiceCreateRequest): Promise<IpRow[]> {
  // The new IP belongs to req.project: it has to be one of the projects the call may write to.
  if (!inProjectScope(scope, req.project)) throw notFound("project", req.project);
  const quota = await projectQuotas(projects, req.project);
  return inTransaction(db, async (tx) => {
    // Another project's private network, and the partition's super and underlay networks (which no tenant
    // sees), read exactly as a network that does not exist: outsiders get one answer (NetworkService.Get agrees).
    const network = await tenantNetworks.getUsable(tx, scope, req.network);
    const prefixes = prefixesOf((await networks.prefixesOf(tx, [network.id])).get(network.id) ?? []);
    const families = new Set(prefixes.map((p) => p.family));
    const wanted: Family[] = req.addressFamily === FamilyChoice.DUAL_STACK ? [4, 6] : [req.addressFamily === FamilyChoice.V4 ? 4 : req.addressFamily === FamilyChoice.V6 ? 6 : families.has(4) ? 4 : 6];
    for (const family of req.ip === undefined ? wanted : []) {
      if (!families.has(family)) throw invalidArgument(`invalid request: address_family: network "${network.id}" has no IPv${family} prefix`);
    }
    await quotas.lockProject(tx, req.project);
    const count = req.ip === undefined ? wanted.length : 1;
    if (quota.ip !== undefined && (await quotas.ipsOf(tx, req.project)) + count > quota.ip) {
      throw exhausted(`project "${req.project}" has reached its quota of ${quota.ip} IP(s)`);
    }
    const template = {
      id: uuidv7(),
      networkId: network.id,
      project: req.project,
      name: req.name,
      description: req.description,
      type: req.type || IpKind.EPHEMERAL,
      labels: req.labels,
    };
    if (req.ip !== undefined) {
      const address = parseAddress(req.ip)!;
      const prefix = prefixes.find((p) => containsAddress(p, address));
      if (!prefix) throw invalidArgument(`invalid request: ip: ${req.ip} is not inside network "${network.id}" (${prefixes.map(formatPrefix).join(", ")})`);
      const row = await acquireSpecificIp(tx, prefix, address, template);
      if (!row) throw taken(`ip ${req.ip} is already allocated`);
      noteCreated(row.id);
      return [row];
    }
    const out: IpRow[] = [];
    // One row each; with dual stack both commit together or neither does.
    for (const family of wanted)
      out.push(
        await acquireIp(
          tx,
          prefixes.filter((p) => p.family === family),
          { ...template, id: uuidv7() },
          network.id,
        ),
      );
    noteCreated(...out.map((ip) => ip.id));
    return out;
  });
}

/** Frees an IP of a project; IPs a machine uses go with the machine. */
export async function freeIp(db: DbHandle, scope: ProjectScope, id: string): Promise<IpRow> {
  return inTransaction(db, async (tx) => {
    const row = await tenantIps.lock(tx, scope, id);
    if (row.machineId) throw failedPrecondition(`ip ${row.ip} is used by machine "${row.machineId}"; it is freed with the machine`);
    await releaseIp(tx, row.ip);
    return row;
  });
}
