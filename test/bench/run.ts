import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { launchServer } from "../helpers/server-launch.js";
import { measure, report, type Comparison } from "./harness.js";
import { benchAllocation } from "./allocation.js";
import { benchConsole } from "./console.js";
import { benchIpam } from "./ipam.js";
import { benchLabBoot } from "./lab.js";
import { benchMetalctl } from "./metalctl.js";
import { benchSwitchFanout } from "./switch-fanout.js";
import { benchWaitStreams } from "./wait-streams.js";

/**
 * Benchmarks against local PostgreSQL. Each result is printed beside a raw
 * baseline measured in the same run: the same number of round trips of the
 * most trivial equivalent (here: a primary-key SELECT through pg).
 */
async function main() {
  const { server, metalDatabaseUrl, stop } = await launchServer();
  const token = server.adminToken;
  const raw = new pg.Pool({ connectionString: metalDatabaseUrl, max: 16 });
  const comparisons: Comparison[] = [];
  try {
    const auth = [(next: any) => (req: any) => (req.header.set("authorization", `Bearer ${token}`), next(req))];
    const admin = createClient(AdminPartitionService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: auth }));
    for (let i = 0; i < 100; i++) await admin.create({ id: `bench-${i}`, name: `bench ${i}` });
    const connectJson = createClient(PartitionService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: auth }));
    const grpc = createClient(PartitionService, createGrpcTransport({ baseUrl: server.url, interceptors: auth }));
    const rawGet = (i: number) => raw.query("select * from partitions where id = $1", [`bench-${i % 100}`]);

    for (const [label, client] of [["Connect JSON/HTTP1.1", connectJson], ["gRPC/h2c", grpc]] as const) {
      for (const concurrency of [1, 16]) {
        const n = concurrency === 1 ? 2000 : 8000;
        await measure("warmup", 200, concurrency, (i) => client.get({ id: `bench-${i % 100}` }));
        const subject = await measure(`PartitionService.Get ${label}`, n, concurrency, (i) => client.get({ id: `bench-${i % 100}` }));
        const baseline = await measure("raw pg SELECT by id", n, concurrency, rawGet);
        comparisons.push({ what: `partition Get, ${label}, ${concurrency} client(s)`, subject, baseline });
      }
    }
    comparisons.push(...(await benchIpam()));
    comparisons.push(...(await benchAllocation()));
    comparisons.push(...(await benchWaitStreams()));
    comparisons.push(...(await benchSwitchFanout()));
    comparisons.push(...(await benchMetalctl()));
    comparisons.push(...(await benchLabBoot()));
    comparisons.push(...(await benchConsole()));
    report(comparisons);
  } finally {
    await raw.end();
    await stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
