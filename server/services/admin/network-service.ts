import type { ServiceImpl } from "@connectrpc/connect";
import type { NetworkService } from "../../../gen/metal/admin/v1/network_pb.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import { versionOf } from "../../convert/meta.js";
import { toProtoNetwork } from "../../convert/network.js";
import type { DbHandle } from "../../db/handle.js";
import { NetworkKind } from "../../domain/network.js";
import { invalidArgument } from "../../errors.js";
import type { NewNetworkRow } from "../../repositories/network-repository.js";
import { networkRepository as networks } from "../../repositories/network-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { createOperatorNetwork, deleteOperatorNetwork } from "../../usecases/networks/allocation.js";
import { renderNetwork, renderNetworks } from "../../usecases/networks/view.js";
import { validateOperatorNetworkCreate, validateOperatorNetworkUpdate } from "../../validate/network.js";

export function createAdminNetworkService({ db, projects }: { db: DbHandle; projects: ProjectDirectory }): ServiceImpl<typeof NetworkService> {
  return {
    async create(req) {
      validateOperatorNetworkCreate(req);
      return { network: await renderNetwork(db, await createOperatorNetwork(db, projects, req)) };
    },
    async update(req) {
      validateOperatorNetworkUpdate(req);
      const patch: Partial<NewNetworkRow> = {};
      if (req.name !== undefined) patch.name = req.name;
      if (req.description !== undefined) patch.description = req.description;
      if (req.destinationPrefixes) patch.destinationPrefixes = req.destinationPrefixes.values;
      if (req.labels) patch.labels = req.labels.values;
      if (req.defaultChildPrefixLength) {
        const current = await networks.get(db, req.id);
        if (current.kind !== NetworkKind.SUPER) throw invalidArgument("invalid request: default_child_prefix_length: only super networks have child prefix lengths");
        patch.defaultChildLengthV4 = req.defaultChildPrefixLength.ipv4 ?? current.defaultChildLengthV4;
        patch.defaultChildLengthV6 = req.defaultChildPrefixLength.ipv6 ?? current.defaultChildLengthV6;
      }
      return { network: await renderNetwork(db, await networks.update(db, req.id, versionOf(req.version), patch)) };
    },
    async delete(req) {
      const { row, prefixes } = await deleteOperatorNetwork(db, req.id);
      return { network: toProtoNetwork(row, prefixes) };
    },
    async get(req) {
      return { network: await renderNetwork(db, await networks.get(db, req.id)) };
    },
    async list(req) {
      const page = await networks.list(db, { kind: req.type || undefined, partition: req.partition, project: req.project }, pageRequest(req.paging));
      return { networks: await renderNetworks(db, page.items), nextPageToken: page.nextPageToken };
    },
  };
}
