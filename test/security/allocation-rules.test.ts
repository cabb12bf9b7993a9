import { randomUUID } from "node:crypto";
import { type Client, Code, type ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { SizeReservationService as AdminSizeReservations } from "../../gen/metal/admin/v1/size_reservation_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, MachineState } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { machineAllocationRepository as allocations } from "../../server/repositories/machine-repository.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, S1_HARDWARE_JSON, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Allocation by machine id passes exactly the candidate rule of allocation by
 * size, and outsiders learn nothing from the answer. Each refusal here was
 * granted (or answered differently) before: the lab reproduced a tenant
 * taking another tenant's machine 225 ms after it was freed, before its reclaim.
 */

let server: TestServer;
let fixture: PartitionFixture;
let pb: Client<typeof MachineService>;
let pc: Client<typeof MachineService>;
let admin: Client<typeof AdminMachineService>;
let pcNetwork: string;

const rows = async <T>(q: ReturnType<typeof sql>) => ((await server.app.db.execute(q)) as unknown as { rows: T[] }).rows;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 600_000 } });
  fixture = await setUpPartition(server);
  await server.client(MdProjectService, server.adminToken).create({ project: { meta: { id: "pc" }, name: "c", tenantId: "t" } });
  pcNetwork = (await server.client(NetworkService, server.adminToken).create({ project: "pc", partition: "p1" })).network!.id;
  const tokens = server.client(AdminTokens, server.adminToken);
  const editor = async (project: string) => (await tokens.create({ subject: `ed-${project}`, roles: { projectRoles: { [project]: ProjectRole.EDITOR } } })).secret;
  pb = server.client(MachineService, await editor("pb"));
  pc = server.client(MachineService, await editor("pc"));
  admin = server.client(AdminMachineService, server.adminToken);
});

afterAll(() => fixture.stopAll());

// Every test starts with no machine waiting: only the machines it makes can be candidates.
beforeEach(async () => {
  await server.app.db.execute(sql`update machines set waiting_until = null where allocation is null`);
});

/** A registered s1 machine, as its hammer's events and Wait stream leave it (written directly). */
async function machine(opts: { waiting?: boolean; liveliness?: string } = {}): Promise<string> {
  const id = randomUUID();
  const lease = opts.waiting === false ? sql`null` : sql`now() + interval '1 hour'`;
  await server.app.db.execute(sql`
    insert into machines (id, partition_id, size_id, rack_id, waiting_until, hardware)
    values (${id}, 'p1', 's1', 'r1', ${lease}, ${S1_HARDWARE_JSON}::jsonb)`);
  await server.app.db.execute(sql`
    insert into machine_events (machine_id, liveliness, events, last_event_time) values (${id}, ${opts.liveliness ?? "Alive"}, '[]'::jsonb, now())`);
  return id;
}

const byId = (project: "pb" | "pc", machineId: string) => ({
  project,
  partition: "p1",
  size: "s1",
  image: "debian-12",
  name: "m",
  networks: [project === "pb" ? fixture.primary.pb : pcNetwork],
  machineId,
});
const bySize = (project: "pb" | "pc") => {
  const { machineId: _, ...req } = byId(project, "");
  return req;
};
const allocationOf = async (id: string) => (await rows<{ project: string | null }>(sql`select project from machines where id = ${id}`))[0]?.project ?? null;

describe("allocation by machine id: the candidate rule of allocation by size", () => {
  it("refuses a machine that is not waiting", async () => {
    const id = await machine({ waiting: false });
    await expectCode(pb.create(byId("pb", id)), Code.FailedPrecondition, `machine "${id}" is not available for allocation: it is not waiting`);
    expect(await allocationOf(id)).toBeNull();
  });

  it("refuses a machine an operator tainted (reserved) or locked", async () => {
    const id = await machine();
    await admin.setState({ id, state: MachineState.TAINTED, reason: "flaky NIC" });
    await expectCode(pb.create(byId("pb", id)), Code.FailedPrecondition, "an operator has reserved (tainted) it");
    await expectCode(pb.create(bySize("pb")), Code.ResourceExhausted, "no s1 machine is waiting");
    // Locked was refused before as well; it stays refused, with the same words as every other refusal.
    await admin.setState({ id, state: MachineState.LOCKED, reason: "evidence" });
    await expectCode(pb.create(byId("pb", id)), Code.FailedPrecondition, "an operator has locked it");
    expect(await allocationOf(id)).toBeNull();
    // Once the operator releases it, it is a candidate like any other.
    await admin.setState({ id, state: MachineState.AVAILABLE, reason: "" });
    expect((await pb.create(byId("pb", id))).machine?.id).toBe(id);
  });

  it("refuses a machine that is not alive", async () => {
    const id = await machine({ liveliness: "Dead" });
    await expectCode(pb.create(byId("pb", id)), Code.FailedPrecondition, "it is not alive");
    const unknown = await machine({ liveliness: "Unknown" });
    await expectCode(pb.create(byId("pb", unknown)), Code.FailedPrecondition, "it is not alive");
    expect(await allocationOf(id)).toBeNull();
  });

  it("refuses a machine freed a moment ago, until its reclaimed hammer waits again", async () => {
    // Its lease still runs (as when the Wait stream's replica died or a renewal raced the free).
    const id = await machine();
    expect((await pc.create(byId("pc", id))).machine?.id).toBe(id);
    await pc.delete({ id, project: "pc" });
    // Freeing ended the lease with the allocation: no Wait stream of the reclaimed machine exists yet.
    await expectCode(pb.create(byId("pb", id)), Code.FailedPrecondition, "it is not waiting");
    await expectCode(pb.create(bySize("pb")), Code.ResourceExhausted, "no s1 machine is waiting");
    // A renewal computed for a stream that has ended does not revive the lease ...
    await allocations.extendWaitingMany(server.app.db, [id], new Date(Date.now() + 3_600_000));
    await expectCode(pb.create(byId("pb", id)), Code.FailedPrecondition, "it is not waiting");
    // ... only a new Wait stream of the wiped machine does.
    await allocations.startWaiting(server.app.db, id, new Date(Date.now() + 3_600_000));
    expect((await pb.create(byId("pb", id))).machine?.id).toBe(id);
  });

  it("ends the waiting lease with the allocation, and a new stream cannot start one on an allocated machine", async () => {
    const id = await machine();
    await pb.create(byId("pb", id));
    const lease = async () => (await rows<{ w: string | null }>(sql`select waiting_until as w from machines where id = ${id}`))[0]!.w;
    expect(await lease()).toBeNull();
    await allocations.startWaiting(server.app.db, id, new Date(Date.now() + 3_600_000));
    await allocations.extendWaitingMany(server.app.db, [id], new Date(Date.now() + 3_600_000));
    expect(await lease()).toBeNull();
    await pb.delete({ id, project: "pb" });
    expect(await lease()).toBeNull();
  });

  it("refuses a machine the size reservation of another project keeps, by id as by size", async () => {
    const reservations = server.client(AdminSizeReservations, server.adminToken);
    const reservation = (await reservations.create({ sizeId: "s1", project: "pc", partitionIds: ["p1"], amount: 1, name: "one for pc" })).sizeReservation!;
    try {
      const id = await machine();
      await expectCode(pb.create(byId("pb", id)), Code.ResourceExhausted, "reserved for other projects");
      await expectCode(pb.create(bySize("pb")), Code.ResourceExhausted, "reserved for other projects");
      expect(await allocationOf(id)).toBeNull();
      // A second waiting machine is more than the reservation holds back: either project may take one.
      const second = await machine();
      expect((await pb.create(byId("pb", second))).machine?.id).toBe(second);
      await expectCode(pb.create(byId("pb", id)), Code.ResourceExhausted, "reserved for other projects");
      expect((await pc.create(byId("pc", id))).machine?.id).toBe(id);
    } finally {
      await reservations.delete({ id: reservation.id });
    }
  });
});

describe("allocation answers outsiders as it answers about nothing", () => {
  it("answers another project's machine id exactly like an unknown id", async () => {
    const id = await machine();
    await pc.create(byId("pc", id));
    const taken = await expectCode(pb.create(byId("pb", id)), Code.NotFound);
    const unknownId = randomUUID();
    const unknown = await expectCode(pb.create(byId("pb", unknownId)), Code.NotFound);
    expect(taken.rawMessage.replace(id, "<id>")).toBe(unknown.rawMessage.replace(unknownId, "<id>"));
    // The own project's machine is no secret to its project.
    await expectCode(pc.create(byId("pc", id)), Code.FailedPrecondition, "already allocated");
    expect(await allocationOf(id)).toBe("pc");
  });

  it("answers another project's private network exactly like an unknown network, first or further in the list", async () => {
    await machine();
    const unknownId = randomUUID();
    const asUnknown = (e: ConnectError, id: string) => e.rawMessage.replace(id, "<id>");
    const unknown = await expectCode(pb.create({ ...bySize("pb"), networks: [unknownId] }), Code.NotFound);
    const primary = await expectCode(pb.create({ ...bySize("pb"), networks: [pcNetwork] }), Code.NotFound);
    const further = await expectCode(pb.create({ ...bySize("pb"), networks: [fixture.primary.pb, pcNetwork] }), Code.NotFound);
    expect(asUnknown(primary, pcNetwork)).toBe(asUnknown(unknown, unknownId));
    expect(asUnknown(further, pcNetwork)).toBe(asUnknown(unknown, unknownId));
  });

  it("answers the partition's super network exactly like an unknown network", async () => {
    await machine();
    const unknownId = randomUUID();
    const unknown = await expectCode(pb.create({ ...bySize("pb"), networks: [fixture.primary.pb, unknownId] }), Code.NotFound);
    const operators = await expectCode(pb.create({ ...bySize("pb"), networks: [fixture.primary.pb, "super"] }), Code.NotFound);
    expect(operators.rawMessage.replace("super", "<id>")).toBe(unknown.rawMessage.replace(unknownId, "<id>"));
  });
});
