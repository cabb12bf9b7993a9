import { randomUUID } from "node:crypto";
import { type Client, Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { MachineLiveliness, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { runLivelinessJob } from "../../server/jobs/liveliness.js";
import { runResurrectionJob } from "../../server/jobs/resurrection.js";
import { machineLifecycleRepository } from "../../server/repositories/machine-repository.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let events: Client<typeof EventService>;
let machines: Client<typeof AdminMachineService>;

beforeAll(async () => {
  server = await startTestServer();
  await server.client(AdminPartitionService, server.adminToken).create({ id: "p1" });
  await server.client(AdminPartitionService, server.adminToken).create({ id: "p2" });
  const infra = (await server.client(AdminTokenService, server.adminToken).create({ subject: "metal-core-p1", roles: { infraPartition: "p1" } })).secret;
  events = server.client(EventService, infra);
  machines = server.client(AdminMachineService, server.adminToken);
});

const ev = (machineId: string, type: T, message = "") => ({ machineId, type, message });

describe("provisioning events", () => {
  it("creates unknown machines on their first event and records the provisioning steps", async () => {
    const id = randomUUID();
    const res = await events.send({ partition: "p1", events: [T.PXE_BOOTING, T.PREPARING, T.ALIVE, T.REGISTERING, T.WAITING].map((t) => ev(id, t)) });
    expect(res).toMatchObject({ events: 5, failed: [] });
    const { machine } = await machines.get({ id });
    expect(machine?.partition).toBe("p1");
    expect(machine?.events?.liveliness).toBe(MachineLiveliness.ALIVE);
    expect(machine?.events?.log.map((e) => e.type)).toEqual([T.WAITING, T.REGISTERING, T.PREPARING, T.PXE_BOOTING]);
  });

  it("processes the valid entries of a batch and lists the others", async () => {
    const id = randomUUID();
    const res = await events.send({ partition: "p1", events: [ev(id, T.PXE_BOOTING), ev("not-a-uuid", T.PXE_BOOTING), ev(id, T.UNSPECIFIED), ev(id, T.PREPARING)] });
    expect(res.events).toBe(2);
    expect(res.failed).toEqual(["not-a-uuid: machine_id is not a UUID", `${id}: unknown event type 0`]);
  });

  it("marks crash loops and shows them as issues", async () => {
    const id = randomUUID();
    await events.send({ partition: "p1", events: [T.PXE_BOOTING, T.PREPARING, T.REGISTERING, T.PXE_BOOTING].map((t) => ev(id, t, "boot")) });
    const { machine } = await machines.get({ id });
    expect(machine?.events?.crashLoop).toBe(true);
    expect(machine?.events?.log[0]?.message).toBe("[unexpectedly received in state registering]: boot");
    const issues = await machines.issues({ partition: "p1", paging: { limit: 1000 } });
    expect(issues.machines.find((m) => m.machineId === id)?.issues).toEqual(["crashloop", "last-event-error"]);
  });

  it("loses no event when batches for one machine arrive in parallel", async () => {
    const id = randomUUID();
    await events.send({ partition: "p1", events: [ev(id, T.PXE_BOOTING)] });
    await Promise.all(Array.from({ length: 12 }, () => events.send({ partition: "p1", events: [ev(id, T.PLANNED_REBOOT)] })));
    const { machine } = await machines.get({ id });
    expect(machine?.events?.log).toHaveLength(13);
  });

  it("accepts events only from the partition's own infra token, and only for its machines", async () => {
    const id = randomUUID();
    await expectCode(events.send({ partition: "p2", events: [ev(id, T.PXE_BOOTING)] }), Code.PermissionDenied, 'infra token of partition "p2"');
    await events.send({ partition: "p1", events: [ev(id, T.PXE_BOOTING)] });
    const admin = server.client(EventService, server.adminToken);
    const res = await admin.send({ partition: "p2", events: [ev(id, T.PREPARING)] });
    expect(res.failed).toEqual([`${id}: the machine is in partition "p1", not "p2"`]);
    await expectCode(admin.send({ partition: "", events: [] }), Code.InvalidArgument, "partition: is required");
  });
});

describe("liveliness job", () => {
  it("declares silent free machines dead", async () => {
    const id = randomUUID();
    await events.send({ partition: "p1", events: [ev(id, T.PXE_BOOTING)] });
    await server.app.db.execute(sql`update machine_events set last_event_time = now() - interval '10 minutes' where machine_id = ${id}`);
    expect(await runLivelinessJob(server.app.db)).toBeGreaterThanOrEqual(1);
    expect((await machines.get({ id })).machine?.events?.liveliness).toBe(MachineLiveliness.DEAD);
    expect((await machines.issues({ partition: "p1", paging: { limit: 1000 } })).machines.find((m) => m.machineId === id)?.issues).toContain("liveliness-dead");
    // An event brings it back.
    await events.send({ partition: "p1", events: [ev(id, T.ALIVE)] });
    expect((await machines.get({ id })).machine?.events?.liveliness).toBe(MachineLiveliness.ALIVE);
  });

  it("runs on one replica at a time", async () => {
    const url = (server.app.db as unknown as { $client: { options: { connectionString: string } } }).$client.options.connectionString;
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      await other.query("begin");
      await other.query("select pg_advisory_xact_lock(7105)");
      expect(await runLivelinessJob(server.app.db)).toBeUndefined();
      await other.query("commit");
      expect(await runLivelinessJob(server.app.db)).toBeTypeOf("number");
    } finally {
      await other.end();
    }
  });
});

describe("resurrection job", () => {
  it("sends machines dead for an hour through reclaim again, once", async () => {
    const dead = randomUUID();
    const fresh = randomUUID();
    await events.send({ partition: "p1", events: [ev(dead, T.PXE_BOOTING), ev(fresh, T.PXE_BOOTING)] });
    await server.app.db.execute(sql`update machine_events set liveliness = 'Dead', last_event_time = now() - interval '2 hours' where machine_id = ${dead}`);
    const first = await runResurrectionJob(server.app.db);
    expect(first).toContain(dead);
    expect(first).not.toContain(fresh);
    expect((await machineLifecycleRepository.commandsOf(server.app.db, dead)).map((c) => c.command)).toEqual(["BOOT_FROM_PXE", "RESET"]);
    expect((await machines.get({ id: dead })).machine?.events?.log[0]?.type).toBe(T.MACHINE_RECLAIM);
    // The reclaim was an event: the machine is not due again right away.
    expect(await runResurrectionJob(server.app.db)).not.toContain(dead);
  });
});
