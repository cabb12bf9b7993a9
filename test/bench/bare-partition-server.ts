// The baseline of the unary read rows (unary.ts): PartitionService.Get as the
// plainest connect-node server would serve it. connectNodeAdapter on node:http
// (Connect JSON over HTTP/1.1) and on node:http2 h2c (gRPC), a handler that
// runs the same primary-key SELECT through a pg Pool and returns the message.
// No auth, no interceptors, no metrics, no logging: what the real server's
// extra work is measured against. Run in a process of its own (forked by
// unary.ts); prints one JSON line {"http1": url, "h2c": url} when listening.
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import pg from "pg";
import { PartitionSchema, PartitionService } from "../../gen/metal/api/v1/partition_pb.js";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.POOL_SIZE ?? 20) });

const routes = (router: ConnectRouter) =>
  router.service(PartitionService, {
    async get(req) {
      const { rows } = await pool.query("select * from partitions where id = $1", [req.id]);
      const row = rows[0];
      if (!row) throw new ConnectError(`partition ${req.id} not found`, Code.NotFound);
      return {
        partition: create(PartitionSchema, {
          id: row.id,
          name: row.name,
          description: row.description,
          bootConfig: { imageUrl: row.boot_image_url, kernelUrl: row.boot_kernel_url, commandLine: row.boot_command_line },
          mgmtServiceAddress: row.mgmt_service_address,
          dnsServers: row.dns_servers,
          ntpServers: row.ntp_servers,
          labels: row.labels,
          meta: { createdAt: timestampFromDate(row.created_at), updatedAt: timestampFromDate(row.updated_at), version: BigInt(row.version) },
        }),
      };
    },
  });

const handler = connectNodeAdapter({ routes });
const h1 = http.createServer(handler);
const h2 = http2.createServer(handler);
const listening = (server: http.Server | http2.Http2Server) => new Promise<string>((resolve) => server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
const [http1Url, h2cUrl] = await Promise.all([listening(h1), listening(h2)]);
process.stdout.write(`${JSON.stringify({ http1: http1Url, h2c: h2cUrl })}\n`);

process.once("SIGTERM", () => {
  h1.close();
  h2.close();
  void pool.end().then(() => process.exit(0));
});
