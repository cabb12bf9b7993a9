import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { createApp } from "../../server/app.js";
import { ensureAdminToken } from "../../server/auth/admin-token.js";
import { loadConfig } from "../../server/config.js";
import { listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import { measure, report, type Comparison } from "./harness.js";
import { benchAllocation } from "./allocation.js";
import { benchIpam } from "./ipam.js";

/**
 * Benchmarks against local PostgreSQL. Each result is printed beside a raw
 * baseline measured in the same run: the same number of round trips of the
 * most trivial equivalent (here: a primary-key SELECT through pg).
 */
async function main() {
  const metalDb = await createScratchDatabase("metal_bench");
  const mdDb = await createScratchDatabase("md_bench");
  const dataDir = await mkdtemp(join(tmpdir(), "metal-bench-"));
  const config = loadConfig({ METAL_LISTEN: "127.0.0.1:0", METAL_DATA_DIR: dataDir, DATABASE_URL: metalDb.url, MASTERDATA_DATABASE_URL: mdDb.url, LOG_LEVEL: "silent" });
  const app = await createApp(config, createLogger("silent", { pretty: false }));
  const { token } = await ensureAdminToken(app.db, app.authority, dataDir);
  const listener = await listen(app.handler, config.listen);
  const raw = new pg.Pool({ connectionString: metalDb.url, max: 16 });
  const comparisons: Comparison[] = [];
  try {
    const auth = [(next: any) => (req: any) => (req.header.set("authorization", `Bearer ${token}`), next(req))];
    const admin = createClient(AdminPartitionService, createConnectTransport({ baseUrl: listener.url, httpVersion: "1.1", interceptors: auth }));
    for (let i = 0; i < 100; i++) await admin.create({ id: `bench-${i}`, name: `bench ${i}` });
    const connectJson = createClient(PartitionService, createConnectTransport({ baseUrl: listener.url, httpVersion: "1.1", interceptors: auth }));
    const grpc = createClient(PartitionService, createGrpcTransport({ baseUrl: listener.url, interceptors: auth }));
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
    report(comparisons);
  } finally {
    await raw.end();
    app.endStreams();
    await listener.close(500);
    await app.close();
    await Promise.all([metalDb.drop(), mdDb.drop(), rm(dataDir, { recursive: true, force: true })]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
