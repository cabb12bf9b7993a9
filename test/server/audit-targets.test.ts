import type { Client } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { AuditService as AdminAuditService } from "../../gen/metal/admin/v1/audit_pb.js";
import { IPService as AdminIPService } from "../../gen/metal/admin/v1/ip_pb.js";
import { MachineService as AdminMachineService, BmcCommand } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AuditService } from "../../gen/metal/api/v1/audit_pb.js";
import { ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { IPService } from "../../gen/metal/api/v1/ip_pb.js";
import { MachineService, MachineState } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { ProjectService } from "../../gen/metal/api/v1/project_pb.js";
import { TokenService } from "../../gen/metal/api/v1/token_pb.js";
import { expectCode } from "../helpers/expect.js";
import { insertWaitingMachines, type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * What an audit entry is about beyond what its request names (docs/audit.md):
 * a Create's entry names what it made (the machine an allocation took and
 * its addresses, the new IP, network, token, project and invitation; a call
 * that made nothing names nothing new), and an operator's action on an
 * allocated machine is in that machine's project's trail.
 */
let server: TestServer;
let fixture: PartitionFixture;
let operator: Client<typeof AdminAuditService>;
let eve: string;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  await insertWaitingMachines(server, 2);
  eve = (await server.client(AdminTokenService, server.adminToken).create({ subject: "eve", roles: { projectRoles: { pa: ProjectRole.OWNER } } })).secret;
  operator = server.client(AdminAuditService, server.adminToken);
});

/** The newest entry of eve's calls of `method`. */
async function lastEntry(method: string) {
  const [entry] = (await operator.list({ filter: { subject: "eve", method } })).entries;
  expect(entry).toBeDefined();
  return entry!;
}

describe("the audit entry of a Create", () => {
  it("of an allocation names the machine taken and the addresses it got", async () => {
    const { machine } = await server.client(MachineService, eve).create({ project: "pa", partition: "p1", size: "s1", image: "debian-12", name: "audited", networks: [fixture.primary.pa] });
    const ips = (await server.client(AdminIPService, server.adminToken).list({ project: "pa" })).ips.filter((ip) => ip.machineId === machine!.id);
    expect(ips.length).toBeGreaterThan(0);
    const entry = await lastEntry("MachineService/Create");
    expect(entry.outcome).toBe("ok");
    expect(entry.targetIds.slice(0, 1 + ips.length).sort()).toEqual([machine!.id, ...ips.map((ip) => ip.id)].sort());
    expect(entry.targetIds).toEqual(expect.arrayContaining(["pa", "p1", "s1"]));
    // The machine's later history is found by its id: the allocation is part of it.
    expect((await operator.list({ filter: { targetId: machine!.id } })).entries.map((e) => e.method)).toContain("/metal.api.v1.MachineService/Create");
  });

  it("of a refused allocation names nothing new", async () => {
    // pa's quota is two machines, and one waiting machine is left: the second allocation takes it, the third is refused.
    await server.client(MachineService, eve).create({ project: "pa", partition: "p1", size: "s1", image: "debian-12", name: "second", networks: [fixture.primary.pa] });
    await expectCode(server.client(MachineService, eve).create({ project: "pa", partition: "p1", size: "s1", image: "debian-12", name: "third", networks: [fixture.primary.pa] }), Code.ResourceExhausted);
    const entry = await lastEntry("MachineService/Create");
    expect(entry.outcome).toBe("resource_exhausted");
    expect(entry.targetIds.sort()).toEqual(["debian-12", "p1", "pa", "s1"]);
  });

  it("of an IP, a network and a token names the new one first", async () => {
    const { ip } = await server.client(IPService, eve).create({ project: "pa", network: fixture.primary.pa, name: "audited" });
    expect((await lastEntry("IPService/Create")).targetIds[0]).toBe(ip!.id);
    const { network } = await server.client(NetworkService, eve).create({ project: "pa", partition: "p1", name: "audited" });
    expect((await lastEntry("NetworkService/Create")).targetIds[0]).toBe(network!.id);
    const { token } = await server.client(TokenService, eve).create({ description: "narrower", roles: { projectRoles: { pa: ProjectRole.VIEWER } } });
    expect((await lastEntry("metal.api.v1.TokenService/Create")).targetIds[0]).toBe(token!.id);
  });

  it("of a project and an invitation (made in masterdata) names the new one first", async () => {
    await server.client(MdTenantService, server.adminToken).create({ tenant: { meta: { id: "eves-org" }, name: "eve's org", quotas: { project: { max: 5 } } } });
    const owner = (await server.client(AdminTokenService, server.adminToken).create({ subject: "eve", roles: { tenantRoles: { "eves-org": TenantRole.OWNER } } })).secret;
    const { project } = await server.client(ProjectService, owner).create({ tenant: "eves-org", name: "generated id" });
    expect(project!.id).not.toBe("");
    expect((await lastEntry("ProjectService/Create")).targetIds[0]).toBe(project!.id);
    const { invite } = await server.client(ProjectService, owner).invite({ project: project!.id, role: ProjectRole.VIEWER });
    expect((await lastEntry("ProjectService/Invite")).targetIds[0]).toBe(invite!.id);
  });
});

describe("an operator's action on a machine", () => {
  it("on an allocated machine is in its project's trail; on a free one only in the operators'", async () => {
    const admin = server.client(AdminMachineService, server.adminToken);
    // Project pb (no machine quota), a machine of its own.
    await insertWaitingMachines(server, 1);
    const bob = (await server.client(AdminTokenService, server.adminToken).create({ subject: "bob", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
    const { machine } = await server.client(MachineService, bob).create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "watched", networks: [fixture.primary.pb] });
    await admin.setState({ id: machine!.id, state: MachineState.LOCKED, reason: "disk replacement" });
    await admin.bMCCommand({ id: machine!.id, command: BmcCommand.LED_ON, description: "replace disk 2" });
    const viewer = (await server.client(AdminTokenService, server.adminToken).create({ subject: "vic", roles: { projectRoles: { pb: ProjectRole.VIEWER } } })).secret;
    const seen = (await server.client(AuditService, viewer).list({ project: "pb", filter: { targetId: machine!.id } })).entries;
    expect(seen.map((e) => e.method)).toEqual(expect.arrayContaining(["/metal.admin.v1.MachineService/SetState", "/metal.admin.v1.MachineService/BMCCommand"]));
    expect(seen.filter((e) => e.method.startsWith("/metal.admin.v1.")).every((e) => e.project === "pb" && e.outcome === "ok")).toBe(true);
    // A machine no project holds: the operator's entry names no project, so no tenant sees it.
    const [free] = await insertWaitingMachines(server, 1);
    await admin.setState({ id: free!, state: MachineState.TAINTED, reason: "flaky NIC" });
    const [tainted] = (await operator.list({ filter: { targetId: free!, method: "SetState" } })).entries;
    expect(tainted!.project).toBe("");
  });
});
