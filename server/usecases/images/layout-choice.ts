import { Code, ConnectError } from "@connectrpc/connect";
import type { DbHandle } from "../../db/handle.js";
import type { FilesystemLayoutRow, ImageRow } from "../../db/schema/index.js";
import { selectLayout } from "../../domain/filesystem-layout.js";
import { filesystemLayoutRepository as layouts } from "../../repositories/filesystem-layout-repository.js";

/**
 * The layout a machine of a size installed with an image gets (the first by id
 * whose constraints match), or NotFound.
 */
export async function layoutFor(db: DbHandle, sizeId: string, image: ImageRow): Promise<FilesystemLayoutRow> {
  const chosen = selectLayout(await layouts.forSize(db, sizeId), sizeId, { os: image.os, version: image.osVersion });
  if (!chosen) throw new ConnectError(`no filesystem layout is for size "${sizeId}" and image "${image.id}"`, Code.NotFound);
  return chosen;
}
