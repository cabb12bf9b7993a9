import type { ServiceImpl } from "@connectrpc/connect";
import type { PartitionService } from "../../../gen/metal/api/v1/partition_pb.js";
import { capacityInput, toProtoCapacity } from "../../convert/capacity.js";
import { toProtoPartition } from "../../convert/partition.js";
import type { DbHandle } from "../../db/handle.js";
import { computeCapacity } from "../../domain/capacity.js";
import { capacityRepository } from "../../repositories/capacity-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { partitionRepository as partitions } from "../../repositories/partition-repository.js";
import { validatePartitionCapacity } from "../../validate/partition.js";

export interface PartitionServiceDeps {
  db: DbHandle;
}

/** Everyone with a token may read partitions: they choose where to allocate. */
export function createPartitionService({ db }: PartitionServiceDeps): ServiceImpl<typeof PartitionService> {
  return {
    async get(req) {
      return { partition: toProtoPartition(await partitions.get(db, req.id)) };
    },
    async list(req) {
      const page = await partitions.list(db, pageRequest(req.paging));
      return { partitions: page.items.map(toProtoPartition), nextPageToken: page.nextPageToken };
    },
    async capacity(req) {
      validatePartitionCapacity(req);
      const snapshot = await capacityRepository.read(db, { partition: req.partition, size: req.size });
      return { partitions: computeCapacity(capacityInput(snapshot, req.project, new Date())).map(toProtoCapacity) };
    },
  };
}
