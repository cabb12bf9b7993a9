import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { inTransaction } from "../../server/db/database.js";
import { quotaRepository } from "../../server/repositories/network-repository.js";
import { eventually } from "../helpers/eventually.js";
import { insertWaitingMachines, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * A project at its machine quota must not hold waiting machines while its
 * allocations wait to be refused: another project's allocations in the same
 * moment get every machine that is free (one run of the old code granted 2
 * of 12 while 9 stayed free). Real parallel connections; the quota lock is
 * held from the side while the burst arrives, so the moment in which the old
 * code held machines is as long as the test needs, not a matter of timing.
 */

const FREE = 12;
const A_BURST = 10;

let server: TestServer;
let networks: { pq: string; pb: string };

const rows = async <T>(q: ReturnType<typeof sql>) => ((await server.app.db.execute(q)) as unknown as { rows: T[] }).rows;

beforeAll(async () => {
  // Ten allocations wait for the quota lock on connections of their own while the others go on: more than a test's pool.
  server = await startTestServer({ env: { METAL_DB_POOL_SIZE: "24" } });
  const fixture = await setUpPartition(server);
  await server.client(MdProjectService, server.adminToken).create({ project: { meta: { id: "pq" }, name: "q", tenantId: "t", quotas: { machine: { max: 1 } } } });
  networks = { pq: (await server.client(NetworkService, server.adminToken).create({ project: "pq", partition: "p1" })).network!.id, pb: fixture.primary.pb };
  await insertWaitingMachines(server, FREE);
});

const request = (project: "pq" | "pb", i: number) => ({ project, partition: "p1", size: "s1", image: "debian-12", name: `${project}-${i}`, networks: [networks[project]] });

describe("a burst of a project at its quota next to another project's burst", () => {
  it("gives the other project every free machine and the quota project exactly its one", { timeout: scaled(120_000) }, async () => {
    const tenant = server.client(MachineService, server.adminToken);
    // Hold project pq's quota lock from the side, as a long allocation of pq would.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const side = inTransaction(server.app.db, async (tx) => {
      await quotaRepository.lockProject(tx, "pq");
      locked();
      await held;
    });
    await isLocked;

    // pq fires its burst; every one of them waits for the quota lock.
    const a = Promise.allSettled(Array.from({ length: A_BURST }, (_, i) => tenant.create(request("pq", i))));
    await eventually(
      `${A_BURST} allocations of pq wait for its quota lock`,
      async () => {
        const [r] = await rows<{ n: number }>(sql`
        select count(*)::int as n from pg_locks
        where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`);
        return r!.n === A_BURST;
      },
      scaled(60_000),
    );

    // pb asks for all but one of the free machines meanwhile, in parallel: each must be granted.
    const b = await Promise.allSettled(Array.from({ length: FREE - 1 }, (_, i) => tenant.create(request("pb", i))));
    const refusedB = b.filter((r) => r.status === "rejected").map((r) => ConnectError.from((r as PromiseRejectedResult).reason).rawMessage);
    expect(refusedB, "pb was refused while machines were free").toEqual([]);

    release();
    await side;
    const settledA = await a;
    const grantedA = settledA.filter((r) => r.status === "fulfilled");
    expect(grantedA).toHaveLength(1);
    for (const r of settledA) {
      if (r.status === "rejected") {
        const e = ConnectError.from(r.reason);
        expect([Code[e.code], e.rawMessage]).toEqual([Code[Code.ResourceExhausted], 'project "pq" has reached its quota of 1 machine(s)']);
      }
    }
    const byProject = await rows<{ project: string | null; n: number }>(sql`select project, count(*)::int as n from machines group by project order by project`);
    expect(byProject).toEqual([
      { project: "pb", n: FREE - 1 },
      { project: "pq", n: 1 },
    ]);
  });
});
