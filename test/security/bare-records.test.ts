import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BMCService } from "../../gen/metal/infra/v1/bmc_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Issue 12, item 15: an infra token of one partition names a machine UUID it
 * has never seen (events, Dhcp, a BMC report); the bare record that creates
 * must not keep the real machine from registering in its own partition.
 */

const GiB = 2n ** 30n;
let server: TestServer;
let fixture: PartitionFixture;
/** Partition p2's infra token: the one that names machines of p1. */
let p2Token: string;

/** metal-hammer's Register of an s1 machine cabled to leaf01/leaf02 of p1's rack r1. */
const register = (token: string, partition: string, machineId: string) =>
  server.client(BootService, token).register({
    partition,
    machineId,
    hardware: {
      memory: 16n * GiB,
      cpus: [{ model: "Xeon", cores: 4, threads: 8 }],
      disks: [{ name: "/dev/sda", size: 240_000_000_000n }],
      nics: ["leaf01", "leaf02"].map((l, i) => ({ name: `eth${i}`, mac: `0c:c4:7a:00:01:0${i}`, neighbors: [{ hostname: l, port: "swp1" }] })),
    },
  });

const machineOf = async (id: string) => (await server.client(AdminMachineService, server.adminToken).get({ id })).machine!;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  await server.client(AdminPartitions, server.adminToken).create({ id: "p2" });
  p2Token = (await server.client(AdminTokens, server.adminToken).create({ subject: "p2-agents", roles: { infraPartition: "p2" } })).secret;
});

describe("bare records made by another partition (issue 12, item 15)", () => {
  it("events and Dhcp of partition 2 for a UUID do not keep the machine from registering in partition 1, where it ends up", async () => {
    const id = randomUUID();
    await server.client(EventService, p2Token).send({ partition: "p2", events: [{ machineId: id, type: T.PXE_BOOTING, message: "p2 says so" }] });
    await server.client(BootService, p2Token).dhcp({ partition: "p2", machineId: id });
    expect((await machineOf(id)).partition).toBe("p2");

    // The real machine boots in p1: its events are refused while p2's bare record stands, then Register takes the record over.
    const early = await server.client(EventService, fixture.infraToken).send({ partition: "p1", events: [{ machineId: id, type: T.PREPARING }] });
    expect(early.failed).toEqual([`${id}: the machine is in partition "p2", not "p1"`]);
    expect(await register(fixture.infraToken, "p1", id)).toMatchObject({ size: "s1", rack: "r1" });
    const m = await machineOf(id);
    expect(m).toMatchObject({ partition: "p1", size: "s1", rack: "r1" });
    // What p2 said about the machine went with its record.
    expect(m.events?.log.map((e) => e.message)).not.toContain("p2 says so");
    const later = await server.client(EventService, fixture.infraToken).send({
      partition: "p1",
      events: [
        { machineId: id, type: T.REGISTERING },
        { machineId: id, type: T.WAITING },
      ],
    });
    expect(later).toMatchObject({ events: 2, failed: [] });
    // Registered, the machine stays in its partition: partition 2 can neither take it back nor record its events.
    await expectCode(register(p2Token, "p2", id), Code.FailedPrecondition, `machine "${id}" is registered in partition "p1", not "p2"`);
    expect((await server.client(EventService, p2Token).send({ partition: "p2", events: [{ machineId: id, type: T.PXE_BOOTING }] })).failed).toHaveLength(1);
    expect(await machineOf(id)).toMatchObject({ partition: "p1", size: "s1" });
  });

  it("a BMC report of partition 2 for a UUID does not either, and its BMC address does not stay with the machine", async () => {
    const id = randomUUID();
    await server.client(BMCService, p2Token).report({ partition: "p2", reports: [{ machineId: id, address: "10.66.0.1:623", user: "ADMIN", password: "p2-secret", interface: "lanplus" }] });
    expect((await machineOf(id)).partition).toBe("p2");
    await register(fixture.infraToken, "p1", id);
    const m = await machineOf(id);
    expect(m.partition).toBe("p1");
    expect(m.bmc?.address ?? "").toBe("");
  });
});
