import type { ServiceImpl } from "@connectrpc/connect";
import type { SizeService } from "../../../gen/metal/admin/v1/size_pb.js";
import { versionOf } from "../../convert/meta.js";
import { sizePatchFromUpdate, sizeRowFromCreate, toProtoConstraints, toProtoSize } from "../../convert/size.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { type Constraint, overlaps } from "../../domain/size.js";
import { suggestConstraints } from "../../domain/size-suggest.js";
import { failedPrecondition, invalidArgument } from "../../errors.js";
import { LockKey, lockForTransaction } from "../../repositories/locks.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import type { SizeRow } from "../../repositories/size-repository.js";
import { sizeRepository as sizes } from "../../repositories/size-repository.js";
import { usageRepository as usage } from "../../repositories/usage-repository.js";
import { deleteUnlessUsed } from "../../usecases/shared/delete-unless-used.js";
import { validateSizeCreate, validateSizeSuggest, validateSizeUpdate } from "../../validate/size.js";
import { validator } from "../../validate/validator.js";

/**
 * Refuses constraints that overlap another size. Runs under an advisory lock
 * held to the end of the transaction, so two parallel writes cannot both pass.
 */
async function assertNoOverlap(tx: DbHandle, id: string, constraints: Constraint[]): Promise<void> {
  await lockForTransaction(tx, LockKey.sizes);
  const clash = (await sizes.others(tx, id)).find((other: SizeRow) => overlaps(constraints, other.constraints));
  if (clash) throw invalidArgument(`invalid request: constraints: overlap with size "${clash.id}"; a machine could match both`);
}

export function createAdminSizeService({ db }: { db: DbHandle }): ServiceImpl<typeof SizeService> {
  return {
    async create(req) {
      validateSizeCreate(req);
      const row = sizeRowFromCreate(req);
      const created = await inTransaction(db, async (tx) => {
        await assertNoOverlap(tx, row.id, row.constraints);
        return sizes.create(tx, row);
      });
      return { size: toProtoSize(created) };
    },
    async update(req) {
      validateSizeUpdate(req);
      const patch = sizePatchFromUpdate(req);
      const updated = await inTransaction(db, async (tx) => {
        if (patch.constraints) await assertNoOverlap(tx, req.id, patch.constraints);
        return sizes.update(tx, req.id, versionOf(req.version), patch);
      });
      return { size: toProtoSize(updated) };
    },
    async delete(req) {
      validator().id("id", req.id).check();
      const row = await deleteUnlessUsed(db, {
        what: `size "${req.id}"`,
        lock: (tx) => sizes.lock(tx, req.id),
        users: (tx) => usage.ofSize(tx, req.id),
        remove: (tx) => sizes.delete(tx, req.id),
        hint: "delete them first",
      });
      return { size: toProtoSize(row) };
    },
    async list(req) {
      const page = await sizes.list(db, pageRequest(req.paging));
      return { sizes: page.items.map(toProtoSize), nextPageToken: page.nextPageToken };
    },
    async suggest(req) {
      validateSizeSuggest(req);
      const { machine } = await machines.get(db, req.machineId.toLowerCase());
      if (!machine.hardware) throw failedPrecondition(`machine "${machine.id}" has not registered its hardware yet; nothing to suggest a size from`);
      return { constraints: toProtoConstraints(suggestConstraints(machine.hardware)) };
    },
  };
}
