import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { BMCService } from "../../gen/metal/infra/v1/bmc_pb.js";
import { kPrincipal, kRequestId } from "../../server/auth/context.js";
import { noRoles, type Principal } from "../../server/domain/roles.js";
import { createAdminMachineService } from "../../server/services/admin/machine-service.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Issue 12 item 10: admin MachineService.Get is open to operator viewers, but
 * the BMC login in it (and the tenant's user data, which routinely carries
 * passwords) is for operator admins only, and every read of a BMC login is
 * recorded: a structured log line naming who, which machine and which
 * request, never the secret itself.
 */
const BMC_PASSWORD = "bmc-Pa55word-for-item-10";
const USER_DATA = "#cloud-config\nchpasswd: { list: 'root:tenant-secret-item-10' }\n";

let server: TestServer;
let fixture: PartitionFixture;
let machineId: string;
let viewerToken: string;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 600_000 } });
  fixture = await setUpPartition(server);
  const m = await fixture.bootMachine("r1");
  machineId = m.id;
  await server.client(BMCService, fixture.infraToken).report({
    partition: "p1",
    reports: [{ machineId, address: "10.51.0.9:623", mac: "aa:bb:cc:51:00:09", user: "bmc-operator", password: BMC_PASSWORD, interface: "lanplus", version: "1", powerState: "ON", fru: {} }],
  });
  await server.client(MachineService, server.adminToken).create({
    project: "pb",
    partition: "p1",
    size: "s1",
    image: "debian-12",
    networks: [fixture.primary.pb],
    machineId,
    userData: USER_DATA,
  });
  viewerToken = (await server.client(AdminTokens, server.adminToken).create({ subject: "night-shift-viewer", roles: { adminRole: AdminRole.VIEWER } })).secret;
});

afterAll(() => fixture?.stopAll());

/** The response body exactly as it goes over the wire (Connect JSON). */
async function rawGet(token: string, method: "Get" | "List", body: unknown): Promise<string> {
  const res = await fetch(`${server.url}/metal.admin.v1.MachineService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return res.text();
}

describe("machine secrets in admin MachineService", () => {
  it("an operator viewer gets neither the BMC login nor the user data, in Get or List", async () => {
    const got = await server.client(AdminMachineService, viewerToken).get({ id: machineId });
    expect(got.bmcCredentials).toBeUndefined();
    expect(got.machine?.allocation?.userData).toBe("");
    // The rest stays visible: the viewer still sees where the BMC is and who has the machine.
    expect(got.machine?.bmc?.address).toBe("10.51.0.9:623");
    expect(got.machine?.allocation?.project).toBe("pb");
    for (const body of [await rawGet(viewerToken, "Get", { id: machineId }), await rawGet(viewerToken, "List", {})]) {
      expect(body).toContain(machineId);
      expect(body).not.toContain(BMC_PASSWORD);
      expect(body).not.toContain("bmc-operator");
      expect(body).not.toContain("tenant-secret-item-10");
    }
  });

  it("an operator admin gets both", async () => {
    const got = await server.client(AdminMachineService, server.adminToken).get({ id: machineId });
    expect(got.bmcCredentials).toMatchObject({ user: "bmc-operator", password: BMC_PASSWORD });
    expect(got.machine?.allocation?.userData).toBe(USER_DATA);
    const listed = (await server.client(AdminMachineService, server.adminToken).list({})).machines.find((m) => m.id === machineId);
    expect(listed?.allocation?.userData).toBe(USER_DATA);
  });

  it("records each read of a BMC login, without the secret; a viewer's read, which gets none, records nothing", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(
          ...chunk
            .toString()
            .split("\n")
            .filter((l) => l !== ""),
        );
        done();
      },
    });
    const service = createAdminMachineService({ db: server.app.db, log: pino({ level: "info" }, sink) });
    const call = (adminRole: AdminRole, requestId: string) => {
      const principal: Principal = { tokenId: randomUUID(), subject: `subject-${requestId}`, expiresAt: new Date(Date.now() + 60_000), roles: { ...noRoles(), adminRole } };
      const ctx = createHandlerContext({
        service: AdminMachineService,
        method: AdminMachineService.method.get,
        protocolName: "connect",
        requestMethod: "POST",
        url: "http://test/metal.admin.v1.MachineService/Get",
        contextValues: createContextValues().set(kPrincipal, principal).set(kRequestId, requestId),
      });
      return { principal, result: service.get!({ id: machineId } as never, ctx) as Promise<{ bmcCredentials?: unknown }> };
    };

    const viewer = call(AdminRole.VIEWER, "req-viewer");
    expect((await viewer.result).bmcCredentials).toBeUndefined();
    const admin = call(AdminRole.ADMIN, "req-admin");
    expect((await admin.result).bmcCredentials).toMatchObject({ password: BMC_PASSWORD });
    // Settled by the admin's read: had the viewer's read been recorded, its line would be there by now.
    await new Promise<void>((r) => sink.write("", () => r()));

    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.audit === "bmc-credentials-read");
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ machine: machineId, subject: admin.principal.subject, tokenId: admin.principal.tokenId, requestId: "req-admin" });
    expect(lines.join("\n")).not.toContain(BMC_PASSWORD);
    expect(lines.join("\n")).not.toContain("bmc-operator");
  });
});
