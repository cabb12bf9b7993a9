import type { ServiceImpl } from "@connectrpc/connect";
import { type IPService, IpType } from "../../../gen/metal/api/v1/ip_pb.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import { versionOf } from "../../convert/meta.js";
import { toProtoIp } from "../../convert/network.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { projectScope } from "../../domain/project-scope.js";
import { invalidArgument } from "../../errors.js";
import type { NewIpRow } from "../../repositories/ip-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { tenantIpRepository as ips } from "../../repositories/tenant/ip-repository.js";
import { allocateIp, freeIp } from "../../usecases/networks/allocation.js";
import { validateIpCreate, validateIpUpdate, validateScopedId } from "../../validate/network.js";

export function createIpService({ db, projects }: { db: DbHandle; projects: ProjectDirectory }): ServiceImpl<typeof IPService> {
  return {
    async get(req) {
      validateScopedId(req.id, req.project, { uuid: true });
      const row = await ips.get(db, projectScope(req.project), req.id);
      return { ip: toProtoIp(row) };
    },
    async list(req) {
      const page = await ips.list(db, projectScope(req.project), { network: req.network }, pageRequest(req.paging));
      return { ips: page.items.map(toProtoIp), nextPageToken: page.nextPageToken };
    },
    async create(req) {
      validateIpCreate(req);
      const rows = await allocateIp(db, projects, projectScope(req.project), req);
      return { ip: toProtoIp(rows[0]!), ips: rows.map(toProtoIp) };
    },
    async update(req) {
      validateIpUpdate(req);
      const scope = projectScope(req.project);
      const row = await inTransaction(db, async (tx) => {
        const current = await ips.lock(tx, scope, req.id);
        if (current.type === IpType.STATIC && req.type === IpType.EPHEMERAL) {
          throw invalidArgument("invalid request: type: a static IP cannot become ephemeral");
        }
        const patch: Partial<NewIpRow> = {};
        if (req.name !== undefined) patch.name = req.name;
        if (req.description !== undefined) patch.description = req.description;
        if (req.type !== IpType.UNSPECIFIED) patch.type = req.type;
        if (req.labels) patch.labels = req.labels.values;
        return ips.update(tx, scope, req.id, versionOf(req.version), patch);
      });
      return { ip: toProtoIp(row) };
    },
    async delete(req) {
      validateScopedId(req.id, req.project, { uuid: true });
      return { ip: toProtoIp(await freeIp(db, projectScope(req.project), req.id)) };
    },
  };
}
