import type { ServiceImpl } from "@connectrpc/connect";
import type { FilesystemLayoutService } from "../../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { layoutRowFromProto, toProtoFilesystemLayout } from "../../convert/filesystem-layout.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { type LayoutSpec, layoutDiskProblems, layoutsOverlap } from "../../domain/filesystem-layout.js";
import { failedPrecondition, invalidArgument } from "../../errors.js";
import { filesystemLayoutRepository as layouts } from "../../repositories/filesystem-layout-repository.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { usageRepository as usage } from "../../repositories/usage-repository.js";
import { deleteUnlessUsed } from "../../usecases/shared/delete-unless-used.js";
import { validateFilesystemLayout } from "../../validate/filesystem-layout.js";
import { validator } from "../../validate/validator.js";

/**
 * Refuses a layout that could apply to the same machine as another one (a
 * shared size and intersecting image constraints). The caller holds the
 * layouts' advisory lock (`layouts.lockForWrite`) to the end of the transaction
 * in which it writes: two parallel writes cannot both pass the check.
 */
async function assertNoOverlap(tx: DbHandle, id: string, spec: LayoutSpec): Promise<void> {
  const clash = (await layouts.sharingSizes(tx, spec.constraints.sizes, id)).find((o) => layoutsOverlap(spec.constraints, o.spec.constraints));
  if (clash) {
    const shared = spec.constraints.sizes.filter((s) => clash.spec.constraints.sizes.includes(s));
    throw invalidArgument(`invalid request: filesystem_layout.constraints: overlaps layout "${clash.id}" (both are for size "${shared[0]}" and images both admit); a machine could match both`);
  }
}

export interface AdminFilesystemLayoutServiceDeps {
  db: DbHandle;
}

/** Operators define how machines are partitioned; at most one layout applies to any size and image. */
export function createAdminFilesystemLayoutService({ db }: AdminFilesystemLayoutServiceDeps): ServiceImpl<typeof FilesystemLayoutService> {
  return {
    async create(req) {
      validateFilesystemLayout(req.filesystemLayout, { update: false });
      const row = layoutRowFromProto(req.filesystemLayout);
      const created = await inTransaction(db, async (tx) => {
        await layouts.lockForWrite(tx);
        await assertNoOverlap(tx, row.id, row.spec);
        return layouts.create(tx, row);
      });
      return { filesystemLayout: toProtoFilesystemLayout(created) };
    },
    async update(req) {
      validateFilesystemLayout(req.filesystemLayout, { update: true });
      const l = req.filesystemLayout;
      const row = layoutRowFromProto(l);
      const updated = await inTransaction(db, async (tx) => {
        await layouts.lockForWrite(tx);
        // Write first, so that a missing layout (NotFound) or a stale version (Aborted) is
        // answered as such; an overlap found afterwards rolls the write back.
        const written = await layouts.update(tx, row.id, versionOf(l.meta!.version), { name: row.name, description: row.description, spec: row.spec });
        await assertNoOverlap(tx, row.id, row.spec);
        return written;
      });
      return { filesystemLayout: toProtoFilesystemLayout(updated) };
    },
    async delete(req) {
      validator().id("id", req.id).check();
      // Refused while allocations use it: a reinstall partitions with the allocation's layout again.
      const row = await deleteUnlessUsed(db, {
        what: `filesystem layout "${req.id}"`,
        lock: (tx) => layouts.lock(tx, req.id),
        users: (tx) => usage.ofFilesystemLayout(tx, req.id),
        remove: (tx) => layouts.delete(tx, req.id),
        hint: "free them first",
      });
      return { filesystemLayout: toProtoFilesystemLayout(row) };
    },
    async match(req) {
      validator().id("id", req.id).uuid("machine_id", req.machineId).check();
      const [layout, { machine }] = await Promise.all([layouts.get(db, req.id), machines.get(db, req.machineId.toLowerCase())]);
      if (!machine.hardware) throw failedPrecondition(`machine "${machine.id}" has not registered its hardware; there are no disks to match`);
      const problems = layoutDiskProblems(layout.spec, machine.hardware.disks);
      return { fits: problems.length === 0, problems };
    },
    async list(req) {
      const page = await layouts.list(db, pageRequest(req.paging));
      return { filesystemLayouts: page.items.map(toProtoFilesystemLayout), nextPageToken: page.nextPageToken };
    },
  };
}
