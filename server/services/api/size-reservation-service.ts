import type { ServiceImpl } from "@connectrpc/connect";
import type { SizeReservationService } from "../../../gen/metal/api/v1/size_reservation_pb.js";
import { toProtoSizeReservation } from "../../convert/size.js";
import type { DbHandle } from "../../db/handle.js";
import { projectScope } from "../../domain/project-scope.js";
import { pageRequest } from "../../repositories/paging.js";
import { tenantSizeReservationRepository as reservations } from "../../repositories/tenant/size-reservation-repository.js";

/** Project members see their project's reservations; another project's look like they do not exist. */
export function createSizeReservationService({ db }: { db: DbHandle }): ServiceImpl<typeof SizeReservationService> {
  return {
    async get(req) {
      const row = await reservations.get(db, projectScope(req.project), req.id);
      return { sizeReservation: toProtoSizeReservation(row) };
    },
    async list(req) {
      const page = await reservations.list(db, projectScope(req.project), pageRequest(req.paging));
      return { sizeReservations: page.items.map(toProtoSizeReservation), nextPageToken: page.nextPageToken };
    },
  };
}
