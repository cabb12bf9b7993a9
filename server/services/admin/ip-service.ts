import type { ServiceImpl } from "@connectrpc/connect";
import type { IPService } from "../../../gen/metal/admin/v1/ip_pb.js";
import { toProtoIp } from "../../convert/network.js";
import type { DbHandle } from "../../db/handle.js";
import { ipRepository as ips } from "../../repositories/ip-repository.js";
import { pageRequest } from "../../repositories/paging.js";

export function createAdminIpService({ db }: { db: DbHandle }): ServiceImpl<typeof IPService> {
  return {
    async list(req) {
      const page = await ips.list(db, { project: req.project, network: req.network }, pageRequest(req.paging));
      return { ips: page.items.map(toProtoIp), nextPageToken: page.nextPageToken };
    },
  };
}
