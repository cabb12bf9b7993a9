import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { expectCode } from "../helpers/expect.js";
import { insertWaitingMachines, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const WAITING = 200;
const PARALLEL = 64;

let server: TestServer;
let tenant: Client<typeof MachineService>;
let network: string;

const rows = async <T>(q: ReturnType<typeof sql>) => ((await server.app.db.execute(q)) as unknown as { rows: T[] }).rows;

beforeAll(async () => {
  server = await startTestServer();
  await setUpPartition(server);
  // 200 registered machines whose hammers wait: leases and liveliness as the Wait streams and events would leave them.
  await insertWaitingMachines(server, WAITING);
  tenant = server.client(MachineService, server.adminToken);
  network = (await server.client(NetworkService, server.adminToken).create({ project: "pb", partition: "p1", length: { ipv4: 22 } })).network!.id;
});

const request = (i: number) => ({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: `m${i}`, networks: [network] });

describe(`${PARALLEL} parallel allocations against ${WAITING} waiting machines`, () => {
  it("hand out no machine, IP or ASN twice, and refuse the 201st", async () => {
    let next = 0;
    const results = await Promise.allSettled(
      Array.from({ length: PARALLEL }, async () => {
        const mine: string[] = [];
        for (let i = next++; i < WAITING; i = next++) mine.push((await tenant.create(request(i))).machine!.id);
        return mine;
      }),
    );
    for (const r of results) if (r.status === "rejected") throw ConnectError.from(r.reason);
    const machines = results.flatMap((r) => (r as PromiseFulfilledResult<string[]>).value);
    expect(machines).toHaveLength(WAITING);
    expect(new Set(machines).size).toBe(WAITING);
    const [ips] = await rows<{ n: number; d: number }>(sql`select count(*)::int as n, count(distinct ip)::int as d from ips where machine_id is not null`);
    expect(ips).toEqual({ n: WAITING * 2, d: WAITING * 2 });
    const [asns] = await rows<{ n: number; d: number }>(sql`select count(*)::int as n, count(distinct owner)::int as d from asns`);
    expect(asns).toEqual({ n: WAITING, d: WAITING });
    await expectCode(tenant.create(request(WAITING)), Code.ResourceExhausted, "no s1 machine is waiting");
  });
});
