import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { BMCService } from "../../gen/metal/infra/v1/bmc_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

let server: TestServer;
let fixture: PartitionFixture;
const m = cli();
let editor: string;
let viewer: string;
let machineId: string;
const as = (token: string, argv: string[]) => m.run(argv, { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: token });

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  const tokens = server.client(AdminTokens, server.adminToken);
  editor = (await tokens.create({ subject: "pb-editor", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  viewer = (await tokens.create({ subject: "pb-viewer", roles: { projectRoles: { pb: ProjectRole.VIEWER } } })).secret;
  const hammer = await fixture.bootMachine("r1");
  machineId = hammer.id;
  await server.client(MachineService, editor).create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", networks: [fixture.primary.pb], machineId });
  await hammer.allocation;
  await server.client(BootService, fixture.infraToken).installationSucceeded({ partition: "p1", machineId, consolePassword: "pw", bootInfo: { imageId: "debian-12.0.20250101" } });
  await server.client(BMCService, fixture.infraToken).report({
    partition: "p1",
    reports: [{ machineId, address: "10.1.0.9:623", mac: "aa:bb:cc:00:00:09", user: "ADMIN", password: "bmc-login-secret", interface: "lanplus", version: "4.2", powerState: "on" }],
  });
});
afterAll(() => fixture?.stopAll());

describe("metalctl machine power, bootdevice and bmc for tenants", () => {
  it("queues power and boot device commands as a project editor", async () => {
    const cycle = await as(editor, ["machine", "power", "cycle", machineId, "--project", "pb"]);
    expect(cycle.stderr).toBe("");
    expect(cycle.stdout).toMatch(new RegExp(`^${machineId}\\s+CYCLE\\s+pending`, "m"));
    const boot = await as(editor, ["ms", "bootdevice", "bios", machineId, "--project", "pb", "-o", "json"]);
    expect(JSON.parse(boot.stdout)).toMatchObject({ command: "BOOT_FROM_BIOS", status: "MACHINE_BMC_COMMAND_STATUS_PENDING" });
  });

  it("shows the BMC state and the commands, never the address or login", async () => {
    const table = await as(viewer, ["machine", "bmc", machineId, "--project", "pb"]);
    expect(table.stderr).toBe("");
    expect(table.stdout).toMatch(/^power: ON\nfirmware: 4\.2\n/);
    expect(table.stdout).toMatch(/CYCLE\s+pending/);
    const json = await as(viewer, ["machine", "bmc", machineId, "--project", "pb", "-o", "json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ bmc: { powerState: "ON", firmwareVersion: "4.2" } });
    for (const secret of ["10.1.0.9", "aa:bb:cc:00:00:09", "bmc-login-secret", "ADMIN"]) expect(table.stdout + json.stdout).not.toContain(secret);
  });

  it("refuses a viewer's power command and says not found for a machine of no project of the caller", async () => {
    const denied = await as(viewer, ["machine", "power", "off", machineId, "--project", "pb"]);
    expect(denied.code).toBe(4);
    const other = (await server.client(AdminTokens, server.adminToken).create({ subject: "pa-editor", roles: { projectRoles: { pa: ProjectRole.EDITOR } } })).secret;
    const missing = await as(other, ["machine", "power", "off", machineId, "--project", "pa"]);
    expect(missing).toMatchObject({ code: 3, stderr: `machine "${machineId}" not found\n` });
  });
});
