import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, it } from "vitest";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { expectCode } from "../helpers/expect.js";
import { insertWaitingMachines, type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Allocation respects every size reservation of the partition, not the first
 * page of them: a reservation that sorts after a thousand others still keeps
 * its machines from other projects.
 */
let server: TestServer;
let fixture: PartitionFixture;
let eve: string;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  await insertWaitingMachines(server, 2);
  // A thousand reservations that hold nothing (written directly: the API wants an amount), then pb's of both machines.
  await server.app.db.execute(sql`
    insert into size_reservations (id, size_id, project, partition_ids, amount)
    select 'r' || lpad(n::text, 4, '0'), 's1', 'pc', array['p1'], 0 from generate_series(0, 999) as n`);
  await server.app.db.execute(sql`insert into size_reservations (id, size_id, project, partition_ids, amount) values ('r1000', 's1', 'pb', array['p1'], 2)`);
  eve = (await server.client(AdminTokenService, server.adminToken).create({ subject: "eve", roles: { projectRoles: { pa: ProjectRole.EDITOR } } })).secret;
});

describe("size reservations in allocation", () => {
  it("counts the 1,001st reservation: pb's two machines are not pa's to take", async () => {
    await expectCode(
      server.client(MachineService, eve).create({ project: "pa", partition: "p1", size: "s1", image: "debian-12", name: "x", networks: [fixture.primary.pa] }),
      Code.ResourceExhausted,
      "reserved for other projects",
    );
  });
});
