import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineService, MachineState } from "../../gen/metal/api/v1/machine_pb.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

let server: TestServer;
let fixture: PartitionFixture;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 600_000 } });
  fixture = await setUpPartition(server);
});

afterAll(() => fixture.stopAll());

const request = (extra: Record<string, unknown> = {}) => ({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "m", networks: [fixture.primary.pb], ...extra });

describe("operator machine actions", () => {
  it("taints and locks only with a reason; tainted machines are not allocated (by size or by id), locked ones are not freed", async () => {
    const admin = server.client(AdminMachineService, server.adminToken);
    const tenant = server.client(MachineService, server.adminToken);
    const m = await fixture.bootMachine("r1");
    await expectCode(admin.setState({ id: m.id, state: MachineState.TAINTED }), Code.InvalidArgument, "reason: is required");
    await expectCode(admin.setState({ id: m.id }), Code.InvalidArgument, "state:");
    const tainted = await admin.setState({ id: m.id, state: MachineState.TAINTED, reason: "flaky NIC" });
    expect(tainted.machine).toMatchObject({ state: MachineState.TAINTED, stateReason: "flaky NIC" });
    await expectCode(tenant.create(request()), Code.ResourceExhausted, "no s1 machine is waiting");
    // Allocation by id passes the same rule as allocation by size (issue 12 item 1).
    await expectCode(tenant.create(request({ machineId: m.id })), Code.FailedPrecondition, "tainted");
    await admin.setState({ id: m.id, state: MachineState.AVAILABLE, reason: "" });
    await tenant.create(request({ machineId: m.id }));
    await admin.setState({ id: m.id, state: MachineState.LOCKED, reason: "customer database" });
    await expectCode(tenant.delete({ id: m.id, project: "pb" }), Code.FailedPrecondition, "is locked");
    const released = await admin.setState({ id: m.id, state: MachineState.AVAILABLE, reason: "ignored" });
    expect(released.machine).toMatchObject({ state: MachineState.AVAILABLE, stateReason: "" });
    await tenant.delete({ id: m.id, project: "pb" });
  });

  it("deletes only free machines that are dead", async () => {
    const admin = server.client(AdminMachineService, server.adminToken);
    const m = await fixture.bootMachine("r2");
    await expectCode(admin.delete({ id: m.id }), Code.FailedPrecondition, "is alive, not dead");
    await server.client(MachineService, server.adminToken).create(request({ machineId: m.id }));
    await expectCode(admin.delete({ id: m.id }), Code.FailedPrecondition, "is allocated");
    await server.client(MachineService, server.adminToken).delete({ id: m.id, project: "pb" });
    await server.app.db.execute(sql`update machine_events set liveliness = 'Dead' where machine_id = ${m.id}`);
    expect((await admin.delete({ id: m.id })).machine?.id).toBe(m.id);
    await expectCode(admin.get({ id: m.id }), Code.NotFound);
    await expectCode(admin.delete({ id: "not-a-uuid" }), Code.InvalidArgument, "id:");
  });
});
