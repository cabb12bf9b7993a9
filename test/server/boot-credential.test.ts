import { randomUUID } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { decodeJwt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { createMachineCredentials } from "../../server/auth/machine-credential.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * BootService.Boot, as pixie asks it per booting MAC with the partition's
 * infra token: which machine the MAC is, its credential, and which
 * metal-cores its hammer talks to.
 */

let server: TestServer;
let fixture: PartitionFixture;

// The metal-cores of leaf01..03 serve their machines; leaf04's registered none.
const ENDPOINTS: Record<string, string> = { leaf01: "10.255.1.1:4150", leaf02: "10.255.1.2:4150", leaf03: "core-r2.p1.example:4150" };
const RACKS = { leaf01: "r1", leaf02: "r1", leaf03: "r2", leaf04: "r2" } as const;
const LEAVES = { r1: ["leaf01", "leaf02"], r2: ["leaf03", "leaf04"] } as const;

let macCounter = 0;
const newMac = () => `0c:c4:7a:b0:00:${(++macCounter).toString(16).padStart(2, "0")}`;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  // Re-registration, as metal-core does at start, now naming its machine endpoint.
  for (const [id, endpoint] of Object.entries(ENDPOINTS)) {
    await server.client(SwitchService, fixture.infraToken).register({ partition: "p1", id, rack: RACKS[id as keyof typeof RACKS], nics: [{ name: "swp1" }], machineEndpoint: endpoint });
  }
});

const boot = () => server.client(BootService, fixture.infraToken);

/** A machine registered in `rack` (with the infra token, as before machine credentials), one NIC per leaf. */
async function registered(rack: "r1" | "r2"): Promise<{ id: string; macs: string[] }> {
  const id = randomUUID();
  const macs = [newMac(), newMac()];
  await boot().register({
    partition: "p1",
    machineId: id,
    hardware: {
      memory: 16n * 2n ** 30n,
      cpus: [{ model: "Xeon", cores: 4, threads: 8 }],
      disks: [{ name: "/dev/sda", size: 240_000_000_000n }],
      nics: macs.map((mac, i) => ({ name: `eth${i}`, mac, neighbors: [{ hostname: LEAVES[rack][i]!, port: "swp1" }] })),
    },
  });
  return { id, macs };
}

describe("BootService.Boot hands the booting machine its credential", () => {
  it("for a registered machine's MAC: the machine, a credential for it and the metal-cores of its own leaves", async () => {
    const m = await registered("r1");
    const answer = await boot().boot({ partition: "p1", mac: m.macs[1]! });
    expect(answer.machineId).toBe(m.id);
    expect(answer.coreEndpoints).toEqual([ENDPOINTS.leaf01, ENDPOINTS.leaf02]);
    const claims = decodeJwt(answer.machineCredential);
    expect(claims).toMatchObject({ iss: "metal-machine", sub: m.id, partition: "p1", gen: 0, mac: m.macs[1] });
    expect(answer.credentialExpiresAt).toBeDefined();
    expect(timestampDate(answer.credentialExpiresAt!).getTime()).toBe(claims.exp! * 1000);
    expect(claims.exp!).toBeGreaterThan(claims.iat!);

    // The credential is good for the machine's own hammer calls.
    const renewed = await server.client(BootService, answer.machineCredential).renewCredential({ partition: "p1", machineId: m.id });
    expect(decodeJwt(renewed.machineCredential)).toMatchObject({ sub: m.id, partition: "p1", gen: 0 });
  });

  it("goes by the MAC when it is a registered machine's, whatever UUID the firmware reports", async () => {
    const m = await registered("r1");
    const answer = await boot().boot({ partition: "p1", mac: m.macs[0]!, uuid: randomUUID() });
    expect(answer.machineId).toBe(m.id);
    expect(decodeJwt(answer.machineCredential).sub).toBe(m.id);
  });

  it("names only the leaves whose metal-core registered a machine endpoint", async () => {
    const m = await registered("r2");
    const answer = await boot().boot({ partition: "p1", mac: m.macs[0]! });
    expect(answer.machineId).toBe(m.id);
    expect(answer.coreEndpoints).toEqual([ENDPOINTS.leaf03]);
  });

  it("finds the machine by a MAC written in upper case with dashes, and binds the credential to its canonical form", async () => {
    const m = await registered("r1");
    const answer = await boot().boot({ partition: "p1", mac: m.macs[0]!.toUpperCase().replaceAll(":", "-") });
    expect(answer.machineId).toBe(m.id);
    expect(decodeJwt(answer.machineCredential)).toMatchObject({ sub: m.id, mac: m.macs[0] });
  });

  it("for an unknown MAC with the firmware's UUID: a first-boot credential for that UUID, bound to the MAC, and the partition's metal-cores", async () => {
    const uuid = randomUUID();
    const mac = newMac();
    const answer = await boot().boot({ partition: "p1", mac, uuid: uuid.toUpperCase() });
    expect(answer.machineId).toBe(uuid);
    expect(decodeJwt(answer.machineCredential)).toMatchObject({ iss: "metal-machine", sub: uuid, partition: "p1", gen: 0, mac });
    expect(answer.credentialExpiresAt).toBeDefined();
    // Not cabled yet: every switch of the partition with a machine endpoint, in id order.
    expect(answer.coreEndpoints).toEqual([ENDPOINTS.leaf01, ENDPOINTS.leaf02, ENDPOINTS.leaf03]);
  });

  it("for an unknown MAC without a UUID: the boot configuration and no credential", async () => {
    const answer = await boot().boot({ partition: "p1", mac: newMac() });
    expect(answer.machineId).toBe("");
    expect(answer.machineCredential).toBe("");
    expect(answer.credentialExpiresAt).toBeUndefined();
    expect(answer.coreEndpoints).toEqual([]);
  });

  it("refuses a UUID that is a registered machine without a NIC of this MAC (a MAC cannot claim another machine)", async () => {
    const m = await registered("r1");
    await expectCode(boot().boot({ partition: "p1", mac: newMac(), uuid: m.id }), Code.NotFound);
  });

  it.each([
    ["a MAC that is too short", { mac: "0c:c4:7a:00:00" }, "mac"],
    ["a MAC with non-hex digits", { mac: "0c:c4:7a:00:00:zz" }, "mac"],
    ["no MAC", { mac: "" }, "mac"],
    ["a UUID that is none", { mac: "0c:c4:7a:00:00:01", uuid: "not-a-uuid" }, "uuid"],
    ["an overlong UUID", { mac: "0c:c4:7a:00:00:01", uuid: `${randomUUID()}${"0".repeat(4096)}` }, "uuid"],
  ])("refuses %s as InvalidArgument", async (_name, req, field) => {
    await expectCode(boot().boot({ partition: "p1", ...req }), Code.InvalidArgument, field);
  });

  it("is for infra tokens of the partition only: not a tenant's token, not another partition's infra token, not a machine credential", async () => {
    const tokens = server.client(AdminTokens, server.adminToken);
    const tenant = (await tokens.create({ subject: "tenant", roles: { projectRoles: { pa: ProjectRole.EDITOR } } })).secret;
    const otherInfra = (await tokens.create({ subject: "p2-agents", roles: { infraPartition: "p2" } })).secret;
    const m = await registered("r1");
    await expectCode(server.client(BootService, tenant).boot({ partition: "p1", mac: m.macs[0]! }), Code.PermissionDenied);
    await expectCode(server.client(BootService, otherInfra).boot({ partition: "p1", mac: m.macs[0]! }), Code.PermissionDenied);
    const credential = (await boot().boot({ partition: "p1", mac: m.macs[0]! })).machineCredential;
    expect(credential).not.toBe("");
    await expectCode(server.client(BootService, credential).boot({ partition: "p1", mac: m.macs[0]! }), Code.PermissionDenied);
    await expectCode(server.client(BootService, credential).boot({ partition: "p1", mac: newMac(), uuid: randomUUID() }), Code.PermissionDenied);
  });
});

describe("the credential's lifetime", () => {
  it("may be any number of milliseconds the configuration allows (METAL_MACHINE_CREDENTIAL_LIFETIME=90500ms): the credential still verifies", async () => {
    const m = await registered("r2");
    const credentials = await createMachineCredentials(server.app.db, 90.5);
    const { secret, expiresAt } = await credentials.issue({ machineId: m.id, partition: "p1", generation: 0, mac: m.macs[0]! });
    expect(Number.isInteger(decodeJwt(secret).exp)).toBe(true);
    expect(expiresAt.getTime()).toBe(decodeJwt(secret).exp! * 1000);
    expect((await credentials.verify(secret)).machine?.id).toBe(m.id);
  });
});
