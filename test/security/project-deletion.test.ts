import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { IPService, IpType } from "../../gen/metal/api/v1/ip_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Issue 12 item 9: a project that still owns something is not deleted, tenant
 * and project ids are never reused, and a deleted project's tokens end.
 */
let server: TestServer;
let fixture: PartitionFixture;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: 60_000, recheckMs: 1_000 } });
  fixture = await setUpPartition(server);
  await server.client(MdTenantService, server.adminToken).create({ tenant: { meta: { id: "t2" }, name: "another tenant" } });
});

afterAll(() => fixture.stopAll());

const token = async (subject: string, projectRoles: Record<string, ProjectRole>) => (await server.client(AdminTokens, server.adminToken).create({ subject, roles: { projectRoles } })).secret;

describe("deleting a project", () => {
  it("is refused while the project owns machines, networks or IPs, naming them; then the id is never reused and its tokens end", async () => {
    const projects = server.client(MdProjectService, server.adminToken);
    const editor = await token("pa-editor", { pa: ProjectRole.EDITOR });
    const both = await token("pa-pb-viewer", { pa: ProjectRole.VIEWER, pb: ProjectRole.VIEWER });
    const machines = server.client(MachineService, editor);

    const hammer = await fixture.bootMachine("r1");
    const { machine } = await machines.create({ project: "pa", partition: "p1", size: "s1", image: "debian-12", name: "web", networks: [fixture.primary.pa] });
    const ip = (await server.client(IPService, editor).create({ project: "pa", network: fixture.primary.pa, type: IpType.STATIC })).ip!;

    // The machine's own IPs (IPv4 and IPv6) and the static one.
    await expectCode(projects.delete({ id: "pa" }), Code.FailedPrecondition, 'project "pa" still has 1 machine, 1 network, 3 IPs');
    expect((await projects.get({ id: "pa" })).project?.meta?.id).toBe("pa");
    expect((await machines.get({ id: hammer.id, project: "pa" })).machine?.id).toBe(machine!.id);

    await machines.delete({ id: hammer.id, project: "pa" });
    await expectCode(projects.delete({ id: "pa" }), Code.FailedPrecondition, 'project "pa" still has 1 network, 1 IP');
    await server.client(IPService, editor).delete({ id: ip.id, project: "pa" });
    await expectCode(projects.delete({ id: "pa" }), Code.FailedPrecondition, 'project "pa" still has 1 network;');
    await server.client(NetworkService, editor).delete({ id: fixture.primary.pa, project: "pa" });
    await projects.delete({ id: "pa" });

    // Never handed to another tenant (nor the same one) again.
    await expectCode(projects.create({ project: { meta: { id: "pa" }, name: "squatter", tenantId: "t2" } }), Code.AlreadyExists, "never reused");
    await expectCode(projects.create({ project: { meta: { id: "pa" }, name: "again", tenantId: "t" } }), Code.AlreadyExists, "never reused");

    // A token that only held the project ends; one that held more keeps the rest.
    await expectCode(server.client(UserService, editor).get({}), Code.Unauthenticated, "revoked");
    const rest = (await server.client(UserService, both).get({})).user?.token?.roles?.projectRoles;
    expect(rest).toEqual({ pb: ProjectRole.VIEWER });
    await expectCode(server.client(MachineService, both).list({ project: "pa" }), Code.PermissionDenied);
    await server.client(MachineService, both).list({ project: "pb" });
  });

  it("of a missing project says not found and changes nothing", async () => {
    await expectCode(server.client(MdProjectService, server.adminToken).delete({ id: "never-was" }), Code.NotFound);
  });
});

describe("deleting a tenant", () => {
  it("is refused while it owns projects, and its id is never reused", async () => {
    const tenants = server.client(MdTenantService, server.adminToken);
    await expectCode(tenants.delete({ id: "t" }), Code.FailedPrecondition, "still owns");
    await tenants.create({ tenant: { meta: { id: "short-lived" }, name: "short" } });
    await tenants.delete({ id: "short-lived" });
    await expectCode(tenants.create({ tenant: { meta: { id: "short-lived" }, name: "reborn" } }), Code.AlreadyExists, "never reused");
    await expectCode(server.client(MdProjectService, server.adminToken).create({ project: { meta: { id: "orphan" }, name: "orphan", tenantId: "short-lived" } }), Code.NotFound);
  });
});
