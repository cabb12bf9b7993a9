import type { ServiceImpl } from "@connectrpc/connect";
import type { SizeReservationService } from "../../../gen/metal/admin/v1/size_reservation_pb.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import { versionOf } from "../../convert/meta.js";
import { sizeReservationPatchFromUpdate, sizeReservationRowFromCreate, toProtoSizeReservation } from "../../convert/size.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { noteCreated } from "../../db/transaction-hook.js";
import { reservationUsage } from "../../domain/size-reservation-usage.js";
import { notFound } from "../../errors.js";
import { uuidv7 } from "../../ids.js";
import { machineAllocationRepository as allocations } from "../../repositories/machine-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { sizeReservationRepository as reservations } from "../../repositories/size-repository.js";
import { referenceHolds as holds } from "../../repositories/usage-repository.js";
import { validateSizeReservationCreate, validateSizeReservationUpdate } from "../../validate/size.js";
import { validator } from "../../validate/validator.js";

export function createAdminSizeReservationService({ db, projects }: { db: DbHandle; projects: ProjectDirectory }): ServiceImpl<typeof SizeReservationService> {
  return {
    async create(req) {
      validateSizeReservationCreate(req);
      if ((await projects.tenantOf(req.project)) === undefined) throw notFound("project", req.project);
      const row = await inTransaction(db, async (tx) => {
        // Held, not just read: a size or partition deleted meanwhile cannot leave the reservation dangling.
        await holds.size(tx, req.sizeId);
        await holds.partitions(tx, req.partitionIds);
        const created = await reservations.create(tx, sizeReservationRowFromCreate(uuidv7(), req));
        noteCreated(created.id);
        return created;
      });
      return { sizeReservation: toProtoSizeReservation(row) };
    },
    async update(req) {
      validateSizeReservationUpdate(req);
      const patch = sizeReservationPatchFromUpdate(req);
      const row = await inTransaction(db, async (tx) => {
        if (patch.partitionIds) await holds.partitions(tx, patch.partitionIds);
        return reservations.update(tx, req.id, versionOf(req.version), patch);
      });
      return { sizeReservation: toProtoSizeReservation(row) };
    },
    async delete(req) {
      return { sizeReservation: toProtoSizeReservation(await reservations.delete(db, req.id)) };
    },
    async get(req) {
      validator().uuid("id", req.id).check();
      return { sizeReservation: toProtoSizeReservation(await reservations.get(db, req.id)) };
    },
    async usage(req) {
      const v = validator();
      if (req.sizeId !== undefined) v.id("size_id", req.sizeId);
      if (req.project !== undefined) v.id("project", req.project, { max: 128 });
      if (req.partitionId !== undefined) v.id("partition_id", req.partitionId);
      v.check();
      const filter = { sizeId: req.sizeId, project: req.project, partitionId: req.partitionId };
      const [all, counts] = await Promise.all([reservations.list(db, filter, { limit: 10_000, after: undefined }), allocations.allocationCounts(db)]);
      const rows = reservationUsage(all.items, counts).filter((u) => req.partitionId === undefined || u.partitionId === req.partitionId);
      return { usages: rows };
    },
    async list(req) {
      const page = await reservations.list(db, { sizeId: req.sizeId, project: req.project, partitionId: req.partitionId }, pageRequest(req.paging));
      return { sizeReservations: page.items.map(toProtoSizeReservation), nextPageToken: page.nextPageToken };
    },
  };
}
