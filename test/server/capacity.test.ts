import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { SizeReservationService as AdminSizeReservationService } from "../../gen/metal/admin/v1/size_reservation_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, MachineState, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition, type WaitingMachine } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

let server: TestServer;
let fixture: PartitionFixture;
let tenantToken: string;
const booted: WaitingMachine[] = [];
let tainted: string;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 600_000 } });
  fixture = await setUpPartition(server);
  for (const rack of ["r1", "r1", "r2", "r2"] as const) booted.push(await fixture.bootMachine(rack));
  // A tenant of project pa only: capacity is for everyone with a token.
  tenantToken = (await server.client(AdminTokenService, server.adminToken).create({ subject: "tina", roles: { projectRoles: { pa: ProjectRole.VIEWER } } })).secret;
});

afterAll(() => fixture.stopAll());

const admin = () => server.client(AdminPartitionService, server.adminToken);
const tenant = () => server.client(PartitionService, tenantToken);
const s1 = async (req: { project?: string } = {}) => {
  const res = await admin().capacity({ partition: "p1", ...req });
  expect(res.partitions.map((p) => p.partition)).toEqual(["p1"]);
  return res.partitions[0]!.sizes.find((s) => s.size === "s1")!;
};
const allocate = (project: "pa" | "pb", name: string) =>
  server.client(MachineService, server.adminToken).create({ project, partition: "p1", size: "s1", image: "debian-12", name, networks: [fixture.primary[project]] });

describe("partition capacity", () => {
  it("counts waiting machines as allocatable and free, the same for operators and tenants", async () => {
    const cap = await s1();
    expect(cap).toMatchObject({ total: 4, allocated: 0, allocatable: 4, free: 4, unavailable: 0, faulty: 0, waiting: 4, phonedHome: 0, other: 0, reservations: 0 });
    const seen = await tenant().capacity({});
    const tenantS1 = seen.partitions[0]!.sizes[0]!;
    expect(tenantS1).toMatchObject({ size: "s1", total: 4, allocatable: 4, free: 4, waiting: 4 });
  });

  it("moves an allocated machine from allocatable to allocated, and counts it as phoned home once its OS runs", async () => {
    const { machine } = await allocate("pa", "web-1");
    expect(await s1()).toMatchObject({ total: 4, allocated: 1, allocatable: 3, free: 3, unavailable: 0 });
    await server.client(EventService, fixture.infraToken).send({
      partition: "p1",
      events: [T.INSTALLING, T.BOOTING_NEW_KERNEL, T.PHONED_HOME].map((type) => ({ machineId: machine!.id, type })),
    });
    expect(await s1()).toMatchObject({ total: 4, allocated: 1, waiting: 3, phonedHome: 1, other: 0, faulty: 0 });
  });

  it("takes another project's unused reservation from free, but not the asking project's own", async () => {
    const reservations = server.client(AdminSizeReservationService, server.adminToken);
    await reservations.create({ sizeId: "s1", project: "pb", partitionIds: ["p1"], amount: 2 });
    expect(await s1()).toMatchObject({ allocatable: 3, free: 1, reservations: 2, usedReservations: 0, remainingReservations: 2 });
    expect(await s1({ project: "pa" })).toMatchObject({ free: 1 });
    expect(await s1({ project: "pb" })).toMatchObject({ free: 3 });
    expect((await tenant().capacity({ partition: "p1", size: "s1", project: "pb" })).partitions[0]!.sizes[0]).toMatchObject({ free: 3, remainingReservations: 2 });

    // pb uses one of its reserved machines: one stays held back.
    await allocate("pb", "db-1");
    expect(await s1()).toMatchObject({ allocated: 2, allocatable: 2, free: 1, reservations: 2, usedReservations: 1, remainingReservations: 1 });
    expect(await s1({ project: "pb" })).toMatchObject({ free: 2 });
  });

  it("counts tainted machines as unavailable and names dead ones as faulty to operators only", async () => {
    const free = (await server.client(AdminMachineService, server.adminToken).list({})).machines.filter((m) => !m.allocation).map((m) => m.id);
    expect(free).toHaveLength(2);
    const [first, dead] = free as [string, string];
    tainted = first;
    await server.client(AdminMachineService, server.adminToken).setState({ id: tainted, state: MachineState.TAINTED, reason: "bad DIMM" });
    await server.app.db.execute(sql`update machine_events set liveliness = 'Dead' where machine_id = ${dead}`);

    const cap = await s1();
    expect(cap).toMatchObject({ total: 4, allocated: 2, allocatable: 0, free: 0, unavailable: 2, faulty: 1, faultyMachines: [dead] });
    expect(cap.allocated + cap.allocatable + cap.unavailable).toBe(cap.total);
    expect(cap.waiting + cap.phonedHome + cap.other).toBe(cap.total);

    const tenantS1 = (await tenant().capacity({ partition: "p1" })).partitions[0]!.sizes[0]!;
    expect(tenantS1).toMatchObject({ allocatable: 0, unavailable: 2, faulty: 1 });
    // On the wire: operators get the machine ids, tenants do not.
    const raw = async (path: string, token: string) => {
      const res = await fetch(`${server.url}/${path}/Capacity`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ partition: "p1" }),
      });
      expect(res.status).toBe(200);
      return res.text();
    };
    expect(await raw("metal.admin.v1.PartitionService", server.adminToken)).toContain(dead);
    expect(await raw("metal.api.v1.PartitionService", tenantToken)).not.toContain(dead);
  });

  it("stops counting a machine as allocatable when its Wait stream ends, though its last event still says Waiting", async () => {
    await server.client(AdminMachineService, server.adminToken).setState({ id: tainted, state: MachineState.AVAILABLE });
    expect(await s1()).toMatchObject({ allocatable: 1, unavailable: 1, waiting: 3 });
    booted.find((m) => m.id === tainted)!.abort.abort();
    await eventually("the ended stream to stop counting", async () => (await s1()).allocatable === 0);
    expect(await s1()).toMatchObject({ allocatable: 0, unavailable: 2, waiting: 3 });
  });

  it("reports every partition, filters by partition and size, and refuses unknown or malformed ones", async () => {
    await admin().create({ id: "p2" });
    expect((await admin().capacity({})).partitions.map((p) => [p.partition, p.sizes.map((s) => s.size)])).toEqual([
      ["p1", ["s1"]],
      ["p2", []],
    ]);
    expect((await admin().capacity({ size: "unknown" })).partitions.map((p) => p.sizes.length)).toEqual([0, 0]);
    await expectCode(admin().capacity({ partition: "nowhere" }), Code.NotFound, 'partition "nowhere"');
    await expectCode(tenant().capacity({ size: "s9" }), Code.NotFound, 'size "s9"');
    await expectCode(admin().capacity({ partition: "Bad Id", project: "" }), Code.InvalidArgument, "partition:");
  });

  it("is open to any token in metal.api.v1 and to operators only in metal.admin.v1", async () => {
    await expectCode(server.client(AdminPartitionService, tenantToken).capacity({}), Code.PermissionDenied);
    await expectCode(server.client(PartitionService).capacity({}), Code.Unauthenticated);
  });
});
