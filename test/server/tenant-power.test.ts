import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import {
  MachineBmcCommandStatus,
  MachineBootDevice,
  MachinePowerAction,
  MachineService,
  MachineServiceGetBmcResponseSchema,
  MachineState,
  ProvisioningEventType as T,
} from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { TENANT_COMMANDS_PER_WINDOW } from "../../server/domain/tenant-bmc-command.js";
import { type RunningBmcAgent, runBmcAgent } from "../helpers/bmc-agent.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Issue 19, tenant machine power: a project editor queues power and boot
 * device commands for the project's allocated machines, a real metal-bmc
 * carries them out on simulated BMCs, and a project viewer reads the BMC
 * state, never its address or login.
 */

let server: TestServer;
let fixture: PartitionFixture;
let dir: string;
let agent: RunningBmcAgent;
const sims = new SimBmcs({ user: "ADMIN", password: "ADMIN" }); // the login runBmcAgent uses;
const BOOT_INFO = { imageId: "debian-12.0.20250101", primaryDisk: "/dev/sda", osPartition: "/dev/sda2", kernel: "/boot/vmlinuz", initrd: "/boot/initrd", cmdline: "root=/dev/sda2", bootloaderId: "debian" };

let editor: ReturnType<typeof tenantClient>;
let viewer: ReturnType<typeof tenantClient>;
let otherEditor: ReturnType<typeof tenantClient>;
/** An installed machine of project pb whose simulated BMC metal-bmc reaches. */
let installed: { id: string; sim: SimMachineBmc };
/** A machine of pb allocated but not installed yet (no BMC behind it: its commands stay pending). */
let installing: string;
/** A waiting machine no project has. */
let free: string;

function tenantClient(token: string) {
  return server.client(MachineService, token);
}

async function token(subject: string, project: string, role: ProjectRole) {
  return (await server.client(AdminTokens, server.adminToken).create({ subject, roles: { projectRoles: { [project]: role } } })).secret;
}

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 1_000 } });
  fixture = await setUpPartition(server);
  dir = await mkdtemp(join(tmpdir(), "tenant-power-"));
  const leaseFile = join(dir, "dhcpd.leases");
  editor = tenantClient(await token("pb-editor", "pb", ProjectRole.EDITOR));
  viewer = tenantClient(await token("pb-viewer", "pb", ProjectRole.VIEWER));
  otherEditor = tenantClient(await token("pa-editor", "pa", ProjectRole.EDITOR));

  const hammer = await fixture.bootMachine("r1");
  const sim = sims.add({ uuid: hammer.id, ip: "10.1.0.77", mac: "aa:bb:cc:00:07:77" });
  await sims.writeLeases(leaseFile);
  agent = runBmcAgent({ url: server.url, token: fixture.infraToken, agent: "tenant-power", version: "test", dir, leaseFile, sims });
  await editor.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12.0.20250101", networks: [fixture.primary.pb], machineId: hammer.id });
  await hammer.allocation;
  await server.client(EventService, fixture.infraToken).send({ partition: "p1", events: [T.INSTALLING, T.BOOTING_NEW_KERNEL].map((type) => ({ machineId: hammer.id, type })) });
  await server.client(BootService, fixture.infraToken).installationSucceeded({ partition: "p1", machineId: hammer.id, consolePassword: "pw-1", bootInfo: BOOT_INFO });
  installed = { id: hammer.id, sim };
  await eventually("the BMC reported", async () => (await viewer.getBmc({ id: hammer.id, project: "pb" })).bmc?.firmwareVersion);

  const second = await fixture.bootMachine("r1");
  await editor.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12.0.20250101", networks: [fixture.primary.pb], machineId: second.id });
  installing = second.id;
  free = (await fixture.bootMachine("r2")).id;
});

afterAll(async () => {
  fixture?.stopAll();
  await agent?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const statusOf = async (id: string, commandId: string) => (await viewer.getBmc({ id, project: "pb" })).commands.find((c) => c.id === commandId)?.status;

describe("tenant machine power", () => {
  it("an editor's power cycle and boot device are queued as durable commands and carried out by metal-bmc", async () => {
    const { id, sim } = installed;
    const before = sim.resets;
    const cycle = (await editor.power({ id, project: "pb", action: MachinePowerAction.CYCLE })).command!;
    expect(cycle).toMatchObject({ command: "CYCLE", status: MachineBmcCommandStatus.PENDING });
    const boot = (await editor.bootDevice({ id, project: "pb", device: MachineBootDevice.BIOS })).command!;
    expect(boot.command).toBe("BOOT_FROM_BIOS");
    await eventually("both done", async () => (await statusOf(id, cycle.id)) === MachineBmcCommandStatus.DONE && (await statusOf(id, boot.id)) === MachineBmcCommandStatus.DONE);
    expect(sim.executed.slice(-2)).toEqual(["CYCLE", "BOOT_FROM_BIOS"]);
    expect(sim.resets).toBe(before + 1);
    expect(sim.bootDevice).toBe("bios");
    // The cycle is a Planned Reboot in the machine's history, not a crash.
    const events = (await viewer.events({ id, project: "pb" })).events!;
    expect(events.log.some((e) => e.type === T.PLANNED_REBOOT && e.message === "CYCLE")).toBe(true);

    const off = (await editor.power({ id, project: "pb", action: MachinePowerAction.OFF })).command!;
    await eventually("off done", async () => (await statusOf(id, off.id)) === MachineBmcCommandStatus.DONE);
    await eventually("power state reported", async () => (await viewer.getBmc({ id, project: "pb" })).bmc?.powerState === "OFF");
    await editor.power({ id, project: "pb", action: MachinePowerAction.ON });
    await eventually("on again", async () => sim.power === "ON");
  });

  it("a viewer reads the BMC state and recent commands, without address, MAC or login anywhere in the answer", async () => {
    const got = await viewer.getBmc({ id: installed.id, project: "pb" });
    expect(got.bmc).toMatchObject({ firmwareVersion: "1.0.0-sim" });
    expect(got.bmc?.lastUpdated).toBeDefined();
    expect(got.commands.length).toBeGreaterThan(0);
    const json = toJsonString(MachineServiceGetBmcResponseSchema, got);
    for (const secret of ["10.1.0.77", "aa:bb:cc:00:07:77", "ADMIN", ":623"]) expect(json).not.toContain(secret);
  });

  it("refuses a viewer's commands", async () => {
    await expectCode(viewer.power({ id: installed.id, project: "pb", action: MachinePowerAction.CYCLE }), Code.PermissionDenied);
    await expectCode(viewer.bootDevice({ id: installed.id, project: "pb", device: MachineBootDevice.PXE }), Code.PermissionDenied);
  });

  it("answers another project's editor, a free machine and an unknown id with the same NotFound", async () => {
    const words = async (call: Promise<unknown>, id: string) => (await expectCode(call, Code.NotFound)).rawMessage.replace(id, "<id>");
    const unknown = randomUUID();
    const expected = await words(editor.power({ id: unknown, project: "pb", action: MachinePowerAction.ON }), unknown);
    expect(await words(otherEditor.power({ id: installed.id, project: "pa", action: MachinePowerAction.OFF }), installed.id)).toBe(expected);
    expect(await words(otherEditor.bootDevice({ id: installed.id, project: "pa", device: MachineBootDevice.PXE }), installed.id)).toBe(expected);
    expect(await words(otherEditor.getBmc({ id: installed.id, project: "pa" }), installed.id)).toBe(expected);
    expect(await words(editor.power({ id: free, project: "pb", action: MachinePowerAction.ON }), free)).toBe(expected);
    expect(await words(editor.getBmc({ id: free, project: "pb" }), free)).toBe(expected);
    expect(await words(editor.getBmc({ id: unknown, project: "pb" }), unknown)).toBe(expected);
  });

  it("accepts only the tenant commands: no LED, no unspecified action", async () => {
    // 8 is the operators' LED_ON in their enum; the tenant enums have no such value.
    await expectCode(editor.power({ id: installed.id, project: "pb", action: 8 as MachinePowerAction }), Code.InvalidArgument, "action");
    await expectCode(editor.power({ id: installed.id, project: "pb", action: MachinePowerAction.UNSPECIFIED }), Code.InvalidArgument, "action");
    await expectCode(editor.bootDevice({ id: installed.id, project: "pb", device: MachineBootDevice.UNSPECIFIED }), Code.InvalidArgument, "device");
  });

  it("leaves the boot device to the installation while a machine is installed, but lets its power be switched", async () => {
    await expectCode(editor.bootDevice({ id: installing, project: "pb", device: MachineBootDevice.DISK }), Code.FailedPrecondition, "being installed");
    const on = (await editor.power({ id: installing, project: "pb", action: MachinePowerAction.ON })).command!;
    expect(on.status).toBe(MachineBmcCommandStatus.PENDING);
  });

  it("bounds the commands per machine: the one over the bound is refused and not queued", async () => {
    const count = async () => (await viewer.getBmc({ id: installing, project: "pb" })).commands.length;
    let accepted = 0;
    let refused: unknown;
    // At most the bound's worth are accepted (fewer: the machine had commands a moment ago), then the refusal comes.
    while (refused === undefined && accepted <= TENANT_COMMANDS_PER_WINDOW) {
      await editor.power({ id: installing, project: "pb", action: MachinePowerAction.RESET }).then(
        () => accepted++,
        (err: unknown) => {
          refused = err;
        },
      );
    }
    expect(ConnectError.from(refused).code).toBe(Code.ResourceExhausted);
    expect(accepted).toBeLessThanOrEqual(TENANT_COMMANDS_PER_WINDOW);
    const before = await count();
    await expectCode(editor.power({ id: installing, project: "pb", action: MachinePowerAction.CYCLE }), Code.ResourceExhausted, "at most");
    // The bound is per machine: another machine of the project is not held back.
    await editor.bootDevice({ id: installed.id, project: "pb", device: MachineBootDevice.DISK });
    expect(await count()).toBe(before);
  });

  it("refuses commands for a machine an operator locked, and still shows its state", async () => {
    const admin = server.client(AdminMachineService, server.adminToken);
    await admin.setState({ id: installed.id, state: MachineState.LOCKED, reason: "disk investigation" });
    try {
      await expectCode(editor.power({ id: installed.id, project: "pb", action: MachinePowerAction.CYCLE }), Code.FailedPrecondition, "locked");
      await expectCode(editor.bootDevice({ id: installed.id, project: "pb", device: MachineBootDevice.PXE }), Code.FailedPrecondition, "locked");
      expect((await viewer.getBmc({ id: installed.id, project: "pb" })).bmc?.firmwareVersion).toBe("1.0.0-sim");
    } finally {
      await admin.setState({ id: installed.id, state: MachineState.AVAILABLE, reason: "" });
    }
    await editor.power({ id: installed.id, project: "pb", action: MachinePowerAction.ON });
  });
});
