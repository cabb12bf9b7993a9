import type { ServiceImpl } from "@connectrpc/connect";
import { NetworkService } from "../../../gen/metal/api/v1/network_pb.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import { versionOf } from "../../convert/meta.js";
import { toProtoNetwork } from "../../convert/network.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import type { NewNetworkRow } from "../../db/schema/index.js";
import { NetworkKind } from "../../domain/network.js";
import { notFound } from "../../errors.js";
import { networkRepository as networks } from "../../repositories/network-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { validateChildNetworkCreate, validateChildNetworkUpdate, validateScopedId } from "../../validate/network.js";
import { mayUseNetwork } from "../../domain/network.js";
import { allocateChildNetwork, freeChildNetwork } from "../../usecases/networks/allocation.js";
import { renderNetwork, renderNetworks } from "../../usecases/networks/view.js";

/** Tenants allocate private networks; they see their own plus the shared and external ones they may use. */
export function createNetworkService({ db, projects }: { db: DbHandle; projects: ProjectDirectory }): ServiceImpl<typeof NetworkService> {
  return {
    async get(req) {
      validateScopedId(req.id, req.project);
      const row = await networks.get(db, req.id);
      if (!mayUseNetwork(row, req.project)) throw notFound("network", req.id);
      return { network: await renderNetwork(db, row) };
    },
    async list(req) {
      const page = await networks.list(db, { project: req.project }, pageRequest(req.paging));
      return { networks: await renderNetworks(db, page.items), nextPageToken: page.nextPageToken };
    },
    async create(req) {
      validateChildNetworkCreate(req);
      return { network: await renderNetwork(db, await allocateChildNetwork(db, projects, req)) };
    },
    async update(req) {
      validateChildNetworkUpdate(req);
      const row = await inTransaction(db, async (tx) => {
        const current = await networks.lock(tx, req.id);
        if (current.project !== req.project || (current.kind !== NetworkKind.CHILD && current.kind !== NetworkKind.CHILD_SHARED)) {
          throw notFound("network", req.id);
        }
        const patch: Partial<NewNetworkRow> = {};
        if (req.name !== undefined) patch.name = req.name;
        if (req.description !== undefined) patch.description = req.description;
        if (req.labels) patch.labels = req.labels.values;
        if (req.shared) patch.kind = NetworkKind.CHILD_SHARED;
        return networks.update(tx, req.id, versionOf(req.version), patch);
      });
      return { network: await renderNetwork(db, row) };
    },
    async delete(req) {
      validateScopedId(req.id, req.project);
      const { row, prefixes } = await freeChildNetwork(db, req.id, req.project);
      return { network: toProtoNetwork(row, prefixes) };
    },
  };
}
