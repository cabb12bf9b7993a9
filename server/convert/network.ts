import { create } from "@bufbuild/protobuf";
import { type IP, IPSchema } from "../../gen/metal/api/v1/ip_pb.js";
import { type FamilyConsumption, type Network, NetworkSchema } from "../../gen/metal/api/v1/network_pb.js";
import type { IpRow, NetworkRow } from "../db/schema/index.js";
import { type Prefix, parsePrefix } from "../domain/ip-math.js";
import { familyUse } from "../domain/network.js";
import type { NetworkUsage } from "../repositories/network-repository.js";
import { toProtoMeta } from "./meta.js";

export function toProtoNetwork(row: NetworkRow, prefixes: string[], usage?: NetworkUsage): Network {
  const parsed = prefixes.map((p) => parsePrefix(p) as Prefix);
  const use = (f: 4 | 6): FamilyConsumption | undefined => {
    if (!usage || !parsed.some((p) => p.family === f)) return undefined;
    const defaultChild = (f === 4 ? row.defaultChildLengthV4 : row.defaultChildLengthV6) ?? undefined;
    return familyUse(parsed, f, defaultChild, usage.usedIps[f], usage.usedPrefixes[f]) as unknown as FamilyConsumption;
  };
  return create(NetworkSchema, {
    id: row.id,
    name: row.name,
    description: row.description,
    type: row.kind,
    partition: row.partitionId ?? "",
    project: row.project ?? "",
    parentNetworkId: row.parentNetworkId ?? "",
    prefixes,
    destinationPrefixes: row.destinationPrefixes,
    defaultChildPrefixLength: row.defaultChildLengthV4 === null && row.defaultChildLengthV6 === null ? undefined : { ipv4: row.defaultChildLengthV4 ?? undefined, ipv6: row.defaultChildLengthV6 ?? undefined },
    vrf: row.vrf ?? 0,
    nat: row.nat,
    labels: row.labels,
    meta: toProtoMeta(row),
    consumption: usage ? { ipv4: use(4), ipv6: use(6) } : undefined,
  });
}

export function toProtoIp(row: IpRow): IP {
  return create(IPSchema, {
    id: row.id,
    ip: row.ip,
    network: row.networkId,
    project: row.project,
    name: row.name,
    description: row.description,
    type: row.type,
    machineId: row.machineId ?? "",
    labels: row.labels,
    meta: toProtoMeta(row),
  });
}
