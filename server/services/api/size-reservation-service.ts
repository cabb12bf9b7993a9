import type { ServiceImpl } from "@connectrpc/connect";
import { SizeReservationService } from "../../../gen/metal/api/v1/size_reservation_pb.js";
import { toProtoSizeReservation } from "../../convert/size.js";
import type { DbHandle } from "../../db/handle.js";
import { notFound } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { sizeReservationRepository as reservations } from "../../repositories/size-repository.js";

/** Project members see their project's reservations; another project's look like they do not exist. */
export function createSizeReservationService({ db }: { db: DbHandle }): ServiceImpl<typeof SizeReservationService> {
  return {
    async get(req) {
      const row = await reservations.get(db, req.id);
      if (row.project !== req.project) throw notFound("size reservation", req.id);
      return { sizeReservation: toProtoSizeReservation(row) };
    },
    async list(req) {
      const page = await reservations.list(db, { project: req.project }, pageRequest(req.paging));
      return { sizeReservations: page.items.map(toProtoSizeReservation), nextPageToken: page.nextPageToken };
    },
  };
}
