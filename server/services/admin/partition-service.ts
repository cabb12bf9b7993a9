import type { ServiceImpl } from "@connectrpc/connect";
import type { PartitionService } from "../../../gen/metal/admin/v1/partition_pb.js";
import { capacityInput, toAdminProtoCapacity } from "../../convert/capacity.js";
import { versionOf } from "../../convert/meta.js";
import { partitionPatchFromUpdate, partitionRowFromCreate, toProtoPartition } from "../../convert/partition.js";
import type { DbHandle } from "../../db/handle.js";
import { computeCapacity } from "../../domain/capacity.js";
import { capacityRepository } from "../../repositories/capacity-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { partitionRepository as partitions } from "../../repositories/partition-repository.js";
import { usageRepository as usage } from "../../repositories/usage-repository.js";
import { deleteUnlessUsed } from "../../usecases/shared/delete-unless-used.js";
import { validatePartitionCapacity, validatePartitionCreate, validatePartitionUpdate } from "../../validate/partition.js";
import { validator } from "../../validate/validator.js";

export interface AdminPartitionServiceDeps {
  db: DbHandle;
}

/** Operators create, change and delete partitions. */
export function createAdminPartitionService({ db }: AdminPartitionServiceDeps): ServiceImpl<typeof PartitionService> {
  return {
    async create(req) {
      validatePartitionCreate(req);
      return { partition: toProtoPartition(await partitions.create(db, partitionRowFromCreate(req))) };
    },
    async update(req) {
      validatePartitionUpdate(req);
      const row = await partitions.update(db, req.id, versionOf(req.version), partitionPatchFromUpdate(req));
      return { partition: toProtoPartition(row) };
    },
    async delete(req) {
      validator().id("id", req.id).check();
      const row = await deleteUnlessUsed(db, {
        what: `partition "${req.id}"`,
        lock: (tx) => partitions.lock(tx, req.id),
        users: (tx) => usage.ofPartition(tx, req.id),
        remove: (tx) => partitions.delete(tx, req.id),
        hint: "delete them first",
      });
      return { partition: toProtoPartition(row) };
    },
    async list(req) {
      const page = await partitions.list(db, pageRequest(req.paging));
      return { partitions: page.items.map(toProtoPartition), nextPageToken: page.nextPageToken };
    },
    async capacity(req) {
      validatePartitionCapacity(req);
      const snapshot = await capacityRepository.read(db, { partition: req.partition, size: req.size });
      return { partitions: computeCapacity(capacityInput(snapshot, req.project, new Date())).map(toAdminProtoCapacity) };
    },
  };
}
