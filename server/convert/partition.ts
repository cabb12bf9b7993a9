import { create } from "@bufbuild/protobuf";
import type { PartitionServiceCreateRequest, PartitionServiceUpdateRequest } from "../../gen/metal/admin/v1/partition_pb.js";
import { type Partition, PartitionSchema } from "../../gen/metal/api/v1/partition_pb.js";
import type { NewPartitionRow, PartitionRow } from "../db/schema/index.js";
import { toProtoMeta } from "./meta.js";

export function toProtoPartition(row: PartitionRow): Partition {
  return create(PartitionSchema, {
    id: row.id,
    name: row.name,
    description: row.description,
    bootConfig: { imageUrl: row.bootImageUrl, kernelUrl: row.bootKernelUrl, commandLine: row.bootCommandLine },
    mgmtServiceAddress: row.mgmtServiceAddress,
    dnsServers: row.dnsServers,
    ntpServers: row.ntpServers,
    labels: row.labels,
    meta: toProtoMeta(row),
  });
}

export function partitionRowFromCreate(req: PartitionServiceCreateRequest): NewPartitionRow {
  return {
    id: req.id,
    name: req.name,
    description: req.description,
    bootImageUrl: req.bootConfig?.imageUrl ?? "",
    bootKernelUrl: req.bootConfig?.kernelUrl ?? "",
    bootCommandLine: req.bootConfig?.commandLine ?? "",
    mgmtServiceAddress: req.mgmtServiceAddress,
    dnsServers: req.dnsServers,
    ntpServers: req.ntpServers,
    labels: req.labels,
  };
}

/** Only the fields the update sets; everything else stays as stored. */
export function partitionPatchFromUpdate(req: PartitionServiceUpdateRequest): Partial<NewPartitionRow> {
  const patch: Partial<NewPartitionRow> = {};
  if (req.name !== undefined) patch.name = req.name;
  if (req.description !== undefined) patch.description = req.description;
  if (req.bootConfig) {
    patch.bootImageUrl = req.bootConfig.imageUrl;
    patch.bootKernelUrl = req.bootConfig.kernelUrl;
    patch.bootCommandLine = req.bootConfig.commandLine;
  }
  if (req.mgmtServiceAddress !== undefined) patch.mgmtServiceAddress = req.mgmtServiceAddress;
  if (req.dnsServers) patch.dnsServers = req.dnsServers.values;
  if (req.ntpServers) patch.ntpServers = req.ntpServers.values;
  if (req.labels) patch.labels = req.labels.values;
  return patch;
}
