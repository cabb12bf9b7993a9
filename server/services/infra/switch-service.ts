import type { ServiceImpl } from "@connectrpc/connect";
import { SwitchService } from "../../../gen/metal/infra/v1/switch_pb.js";
import { inTransaction, type Db } from "../../db/database.js";
import { partitionRepository as partitions } from "../../repositories/partition-repository.js";
import { switchRepository as switches } from "../../repositories/switch-repository.js";
import { validator } from "../../validate/validator.js";

/** metal-core registers its switch at start and again whenever it reconnects. */
export function createSwitchService({ db }: { db: Db<any> }): ServiceImpl<typeof SwitchService> {
  return {
    async register(req) {
      const v = validator().id("partition", req.partition).id("id", req.id).id("rack", req.rack);
      v.text("os_vendor", req.osVendor, 64).text("os_version", req.osVersion, 64);
      if (req.managementIp !== "") v.ip("management_ip", req.managementIp);
      if (req.nics.length > 256) v.add("nics", "must have at most 256 entries");
      v.list("nics", req.nics.map((n) => n.name), 256, (p, name) => v.requiredText(p.replace("]", "].name"), name, 64));
      v.list("nics", req.nics.map((n) => n.identifier || n.name), 256);
      v.check();
      const { created } = await inTransaction(db, async (tx) => {
        await partitions.get(tx, req.partition);
        return switches.upsert(tx, {
          id: req.id,
          partitionId: req.partition,
          rackId: req.rack,
          osVendor: req.osVendor,
          osVersion: req.osVersion,
          managementIp: req.managementIp,
          // A port without an identifier is known by its name (the original falls back to the MAC).
          nics: req.nics.map((n) => ({ name: n.name, identifier: n.identifier || n.name })),
        });
      });
      return { created };
    },
  };
}
