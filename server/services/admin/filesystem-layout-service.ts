import type { ServiceImpl } from "@connectrpc/connect";
import { FilesystemLayoutService } from "../../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { layoutRowFromProto, toProtoFilesystemLayout } from "../../convert/filesystem-layout.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction, type Db } from "../../db/database.js";
import { layoutsOverlap, type LayoutSpec } from "../../domain/filesystem-layout.js";
import { invalidArgument } from "../../errors.js";
import { filesystemLayoutRepository as layouts } from "../../repositories/image-repository.js";
import { lockForTransaction, LockKey } from "../../repositories/locks.js";
import { pageRequest } from "../../repositories/paging.js";
import { validateFilesystemLayout } from "../../validate/filesystem-layout.js";

/** Refuses a layout that could apply to the same machine as another; serialised by an advisory lock. */
async function assertNoOverlap(tx: Db<any>, id: string, spec: LayoutSpec): Promise<void> {
  await lockForTransaction(tx, LockKey.filesystemLayouts);
  const clash = (await layouts.others(tx, id)).find((o) => layoutsOverlap(spec.constraints, o.spec.constraints));
  if (clash) {
    throw invalidArgument(`invalid request: filesystem_layout.constraints: overlap with layout "${clash.id}" (a size and image both could match)`);
  }
}

export function createAdminFilesystemLayoutService({ db }: { db: Db<any> }): ServiceImpl<typeof FilesystemLayoutService> {
  return {
    async create(req) {
      validateFilesystemLayout(req.filesystemLayout, { update: false });
      const row = layoutRowFromProto(req.filesystemLayout!);
      const created = await inTransaction(db, async (tx) => {
        await assertNoOverlap(tx, row.id, row.spec);
        return layouts.create(tx, row);
      });
      return { filesystemLayout: toProtoFilesystemLayout(created) };
    },
    async update(req) {
      validateFilesystemLayout(req.filesystemLayout, { update: true });
      const l = req.filesystemLayout!;
      const row = layoutRowFromProto(l);
      const updated = await inTransaction(db, async (tx) => {
        await assertNoOverlap(tx, row.id, row.spec);
        return layouts.update(tx, row.id, versionOf(l.meta!.version), { name: row.name, description: row.description, spec: row.spec });
      });
      return { filesystemLayout: toProtoFilesystemLayout(updated) };
    },
    async delete(req) {
      return { filesystemLayout: toProtoFilesystemLayout(await layouts.delete(db, req.id)) };
    },
    async list(req) {
      const page = await layouts.list(db, pageRequest(req.paging));
      return { filesystemLayouts: page.items.map(toProtoFilesystemLayout), nextPageToken: page.nextPageToken };
    },
  };
}
