import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BMCService } from "../../gen/metal/infra/v1/bmc_pb.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

let server: TestServer;
let fixture: PartitionFixture;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 1_000 } });
  fixture = await setUpPartition(server);
  await server.client(AdminPartitions, server.adminToken).create({ id: "p2" });
});

afterAll(() => fixture.stopAll());

const report = (machineId: string, extra: Record<string, unknown> = {}) => ({
  machineId,
  address: "10.1.0.7:623",
  mac: "AA:BB:CC:00:00:07",
  user: "ADMIN",
  password: "bmc-secret-123",
  interface: "lanplus",
  version: "3.45",
  powerState: "on",
  fru: { chassis_part_serial: "CS-7", board_mfg: "Supermicro" },
  ...extra,
});

describe("BMC reports", () => {
  it("create bare machines for unknown UUIDs, merge FRU data, and skip machines of another partition", async () => {
    const bmc = server.client(BMCService, fixture.infraToken);
    const fresh = randomUUID();
    const first = await bmc.report({ partition: "p1", reports: [report(fresh)] });
    expect(first).toMatchObject({ created: 1, updated: 0, skipped: [] });
    const admin = server.client(AdminMachineService, server.adminToken);
    const got = await admin.get({ id: fresh });
    expect(got.machine?.partition).toBe("p1");
    expect(got.machine?.bmc).toMatchObject({ address: "10.1.0.7:623", mac: "aa:bb:cc:00:00:07", powerState: "ON", version: "3.45" });
    expect(got.bmcCredentials).toMatchObject({ user: "ADMIN", password: "bmc-secret-123" });

    // A later report without the MAC and with one FRU field keeps what is known.
    const second = await bmc.report({ partition: "p1", reports: [report(fresh, { mac: "", fru: { product_serial: "PS-7" }, powerState: "OFF", biosVersion: "2.1" })] });
    expect(second).toMatchObject({ created: 0, updated: 1 });
    const merged = (await admin.get({ id: fresh })).machine!;
    expect(merged.bmc?.mac).toBe("aa:bb:cc:00:00:07");
    expect(merged.bmc?.powerState).toBe("OFF");
    expect(merged.bmc?.fru).toEqual({ chassis_part_serial: "CS-7", board_mfg: "Supermicro", product_serial: "PS-7" });

    // metal-bmc of another partition does not take the machine over.
    const p2Token = (await server.client(AdminTokens, server.adminToken).create({ subject: "p2-agents", roles: { infraPartition: "p2" } })).secret;
    const foreign = await server.client(BMCService, p2Token).report({ partition: "p2", reports: [report(fresh, { address: "10.9.9.9:623" })] });
    expect(foreign.skipped).toEqual([fresh]);
    expect((await admin.get({ id: fresh })).machine?.bmc?.address).toBe("10.1.0.7:623");
    // Nor may a p1 agent report for p2.
    await expectCode(bmc.report({ partition: "p2", reports: [report(randomUUID())] }), Code.PermissionDenied);
  });

  it("refuses malformed reports as a whole and stores nothing", async () => {
    const bmc = server.client(BMCService, fixture.infraToken);
    const ok = randomUUID();
    await expectCode(bmc.report({ partition: "p1", reports: [report(ok), report("not-a-uuid")] }), Code.InvalidArgument, "reports[1].machine_id");
    await expectCode(bmc.report({ partition: "p1", reports: [report(ok, { address: "no-port" })] }), Code.InvalidArgument, "reports[0].address");
    await expectCode(bmc.report({ partition: "p1", reports: [report(ok, { mac: "zz" })] }), Code.InvalidArgument, "reports[0].mac");
    await expectCode(server.client(AdminMachineService, server.adminToken).get({ id: ok }), Code.NotFound);
  });

  it("never shows BMC credentials to tenants, and flags machines sharing a BMC address", async () => {
    const hammer = await fixture.bootMachine("r1");
    const bmc = server.client(BMCService, fixture.infraToken);
    const twin = randomUUID();
    await bmc.report({ partition: "p1", reports: [report(hammer.id, { address: "10.1.0.99:623" }), report(twin, { address: "10.1.0.99:623" })] });
    const editor = (await server.client(AdminTokens, server.adminToken).create({ subject: "ed", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
    const tenant = server.client(MachineService, editor);
    await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", networks: [fixture.primary.pb], machineId: hammer.id });
    const seen = await tenant.get({ id: hammer.id, project: "pb" });
    expect(seen.machine?.bmc?.address).toBe("10.1.0.99:623");
    // Not in the message, not anywhere in the JSON the tenant receives.
    const raw = await fetch(`${server.url}/metal.api.v1.MachineService/Get`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${editor}` },
      body: JSON.stringify({ id: hammer.id, project: "pb" }),
    });
    const body = await raw.text();
    expect(raw.status).toBe(200);
    expect(body).toContain("10.1.0.99:623");
    expect(body).not.toContain("bmc-secret-123");
    expect(body).not.toContain("ADMIN");

    const issues = await server.client(AdminMachineService, server.adminToken).issues({ partition: "p1" });
    const of = (id: string) => issues.machines.find((m) => m.machineId === id)?.issues ?? [];
    expect(of(hammer.id)).toContain("bmc-no-distinct-ip");
    expect(of(twin)).toContain("bmc-no-distinct-ip");
    expect(of(twin)).toContain("no-event-container");
    await tenant.delete({ id: hammer.id, project: "pb" });
  });
});

describe("BMC commands", () => {
  it("queue durable commands, record LED state and Planned Reboot, and list newest first", async () => {
    const hammer = await fixture.bootMachine("r2");
    const admin = server.client(AdminMachineService, server.adminToken);
    const led = await admin.bMCCommand({ id: hammer.id, command: BmcCommand.LED_ON, description: "replace disk 2" });
    expect(led.command).toMatchObject({ command: "LED_ON", status: BmcCommandStatus.PENDING, machineId: hammer.id });
    expect(led.machine?.led).toMatchObject({ state: "on", description: "replace disk 2" });
    // LED and boot order commands are not reboots.
    expect((await admin.get({ id: hammer.id })).machine?.events?.log[0]?.type).toBe(T.WAITING);

    const reset = await admin.bMCCommand({ id: hammer.id, command: BmcCommand.RESET });
    expect(reset.command?.command).toBe("RESET");
    const log = (await admin.get({ id: hammer.id })).machine!.events!.log;
    expect(log[0]).toMatchObject({ type: T.PLANNED_REBOOT, message: "RESET" });
    expect(reset.command!.deadline!.seconds > reset.command!.createdAt!.seconds).toBe(true);

    const listed = await admin.commands({ id: hammer.id });
    expect(listed.commands.map((c) => c.command)).toEqual(["RESET", "LED_ON"]);
  });

  it("refuse unknown commands, unknown machines, and callers who are not operator admins", async () => {
    const hammer = await fixture.bootMachine("r1");
    const admin = server.client(AdminMachineService, server.adminToken);
    await expectCode(admin.bMCCommand({ id: hammer.id, command: BmcCommand.UNSPECIFIED }), Code.InvalidArgument, "command");
    await expectCode(admin.bMCCommand({ id: randomUUID(), command: BmcCommand.POWER_ON }), Code.NotFound);
    await expectCode(admin.bMCCommand({ id: "nope", command: BmcCommand.POWER_ON }), Code.InvalidArgument, "id");
    const viewer = (await server.client(AdminTokens, server.adminToken).create({ subject: "op-viewer", roles: { adminRole: 1 } })).secret;
    await expectCode(server.client(AdminMachineService, viewer).bMCCommand({ id: hammer.id, command: BmcCommand.POWER_OFF }), Code.PermissionDenied);
    expect((await admin.commands({ id: hammer.id })).commands).toEqual([]);
  });
});
