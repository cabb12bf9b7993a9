import type { ServiceImpl } from "@connectrpc/connect";
import type { NetworkService } from "../../../gen/metal/api/v1/network_pb.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import { versionOf } from "../../convert/meta.js";
import { toProtoNetwork } from "../../convert/network.js";
import type { DbHandle } from "../../db/handle.js";
import { NetworkKind } from "../../domain/network.js";
import { projectScope } from "../../domain/project-scope.js";
import type { NewNetworkRow } from "../../repositories/network-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { tenantNetworkRepository as networks } from "../../repositories/tenant/network-repository.js";
import { allocateChildNetwork, freeChildNetwork } from "../../usecases/networks/allocation.js";
import { renderNetwork, renderNetworks } from "../../usecases/networks/view.js";
import { validateChildNetworkCreate, validateChildNetworkUpdate, validateScopedId } from "../../validate/network.js";

/** Tenants allocate private networks; they see their own plus the shared and external ones they may use. */
export function createNetworkService({ db, projects }: { db: DbHandle; projects: ProjectDirectory }): ServiceImpl<typeof NetworkService> {
  return {
    async get(req) {
      validateScopedId(req.id, req.project);
      const row = await networks.getUsable(db, projectScope(req.project), req.id);
      return { network: await renderNetwork(db, row) };
    },
    async list(req) {
      const page = await networks.list(db, projectScope(req.project), pageRequest(req.paging));
      return { networks: await renderNetworks(db, page.items), nextPageToken: page.nextPageToken };
    },
    async create(req) {
      validateChildNetworkCreate(req);
      return { network: await renderNetwork(db, await allocateChildNetwork(db, projects, req)) };
    },
    async update(req) {
      validateChildNetworkUpdate(req);
      const patch: Partial<NewNetworkRow> = {};
      if (req.name !== undefined) patch.name = req.name;
      if (req.description !== undefined) patch.description = req.description;
      if (req.labels) patch.labels = req.labels.values;
      if (req.shared) patch.kind = NetworkKind.CHILD_SHARED;
      // One statement: the scope and the version are both in its WHERE, so no lock is needed first.
      const row = await networks.updateOwned(db, projectScope(req.project), req.id, versionOf(req.version), patch);
      return { network: await renderNetwork(db, row) };
    },
    async delete(req) {
      validateScopedId(req.id, req.project);
      const { row, prefixes } = await freeChildNetwork(db, projectScope(req.project), req.id);
      return { network: toProtoNetwork(row, prefixes) };
    },
  };
}
