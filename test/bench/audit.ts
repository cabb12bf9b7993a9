import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { NetworkService as AdminNetworkService } from "../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { IPService } from "../../gen/metal/api/v1/ip_pb.js";
import { NetworkService, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { launchServer } from "../helpers/server-launch.js";
import { type Comparison, type Measurement, measure } from "./harness.js";

const ROUNDS = 5;
const PAIRS_PER_ROUND = 400;

type Launched = Awaited<ReturnType<typeof launchServer>>;

/** A server with a partition, a project and a child network of it; returns the IP create+delete pair to measure. */
async function prepared(launched: Launched): Promise<() => Promise<void>> {
  const { server } = launched;
  const admin = server.adminToken;
  await server.client(AdminPartitionService, admin).create({ id: "p1" });
  await server.client(MdTenantService, admin).create({ tenant: { meta: { id: "t1" }, name: "t1" } });
  await server.client(MdProjectService, admin).create({ project: { meta: { id: "pa" }, name: "a", tenantId: "t1" } });
  await server.client(AdminNetworkService, admin).create({ id: "super-p1", type: NetworkType.SUPER, partition: "p1", prefixes: ["10.0.0.0/16"], defaultChildPrefixLength: { ipv4: 22 } });
  const { network } = await server.client(NetworkService, admin).create({ project: "pa", partition: "p1", name: "bench" });
  const ips = server.client(IPService, admin);
  return async () => {
    const { ip } = await ips.create({ project: "pa", network: network!.id, name: "bench" });
    await ips.delete({ id: ip!.id, project: "pa" });
  };
}

/** The best round: the one least disturbed by whatever else the machine was doing. */
const best = (rounds: Measurement[]) => rounds.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));

/**
 * A mutating call's cost with its audit entry (DESIGN §7: <= 15 % over the
 * same call without it): IP create+delete pairs, two audited calls each,
 * against a second server in the same process with METAL_AUDIT=false.
 * Rounds alternate between the two so that drift in the machine's load
 * falls on both alike.
 */
export async function benchAudit(): Promise<Comparison[]> {
  const on = await launchServer({ env: { METAL_AUDIT: "true" } });
  const off = await launchServer({ env: { METAL_AUDIT: "false" } });
  try {
    const pairOn = await prepared(on);
    const pairOff = await prepared(off);
    await measure("warmup on", 200, 1, pairOn);
    await measure("warmup off", 200, 1, pairOff);
    const roundsOn: Measurement[] = [];
    const roundsOff: Measurement[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      roundsOn.push(await measure("IP create+delete, audited", PAIRS_PER_ROUND, 1, pairOn));
      roundsOff.push(await measure("IP create+delete, audit off", PAIRS_PER_ROUND, 1, pairOff));
    }
    return [
      {
        what: "audit: IP create+delete pairs (2 audited calls), 1 client, vs METAL_AUDIT=false",
        subject: best(roundsOn),
        baseline: best(roundsOff),
        target: "<= 15 % slower",
        ratioTarget: 1 / 1.15,
      },
    ];
  } finally {
    await Promise.allSettled([on.stop(), off.stop()]);
  }
}
