import type { ServiceImpl } from "@connectrpc/connect";
import { BMCService } from "../../../gen/metal/infra/v1/bmc_pb.js";
import type { Db } from "../../db/database.js";
import { partitionRepository as partitions } from "../../repositories/partition-repository.js";
import { validator } from "../../validate/validator.js";
import { recordBmcReports } from "../machine-bmc.js";

const MAX_REPORTS = 1000;

/** metal-bmc reports what it reads from the partition's BMCs. */
export function createBmcService({ db }: { db: Db<any> }): ServiceImpl<typeof BMCService> {
  return {
    async report(req) {
      const v = validator().id("partition", req.partition);
      v.list("reports", req.reports.map((r) => r.machineId.toLowerCase()), MAX_REPORTS, (p, id) => v.uuid(`${p}.machine_id`, id));
      req.reports.forEach((r, i) => {
        const p = `reports[${i}]`;
        if (r.address !== "") v.hostPort(`${p}.address`, r.address);
        if (r.mac !== "" && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(r.mac)) v.add(`${p}.mac`, "is not a MAC address");
        v.text(`${p}.user`, r.user, 128).text(`${p}.password`, r.password, 256).text(`${p}.interface`, r.interface, 32);
        v.text(`${p}.version`, r.version, 128).text(`${p}.power_state`, r.powerState, 16).text(`${p}.bios_version`, r.biosVersion, 128);
        if (Object.keys(r.fru).length > 32) v.add(`${p}.fru`, "must have at most 32 entries");
        for (const [k, val] of Object.entries(r.fru)) v.text(`${p}.fru["${k.slice(0, 32)}"]`, val, 256);
      });
      v.check();
      await partitions.get(db, req.partition);
      const out = await recordBmcReports(db, req.partition, req.reports);
      return out;
    },
  };
}
