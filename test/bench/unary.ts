import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { launchServer } from "../helpers/server-launch.js";
import { measure, type Comparison } from "./harness.js";

/**
 * A unary read (PartitionService.Get) over Connect JSON and gRPC, 1 and 16
 * clients, each beside the same number of primary-key SELECTs through pg:
 * what the whole stack (listener, early checks, interceptors, handler) costs.
 */
export async function benchUnary(): Promise<Comparison[]> {
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
    return comparisons;
  } finally {
    await raw.end();
    await stop();
  }
}
