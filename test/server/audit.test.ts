import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { AuditService as AdminAuditService } from "../../gen/metal/admin/v1/audit_pb.js";
import { NetworkService as AdminNetworkService } from "../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AuditService } from "../../gen/metal/api/v1/audit_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { ConsoleService } from "../../gen/metal/api/v1/console_pb.js";
import { IPService } from "../../gen/metal/api/v1/ip_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { runAuditPruneJob } from "../../server/jobs/audit-prune.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let operator: Client<typeof AdminAuditService>;
let eve: string;
let bob: string;
let vic: string;

beforeAll(async () => {
  server = await startTestServer();
  const admin = server.adminToken;
  await server.client(AdminPartitionService, admin).create({ id: "p1" });
  await server.client(MdTenantService, admin).create({ tenant: { meta: { id: "t1" }, name: "t1" } });
  const projects = server.client(MdProjectService, admin);
  await projects.create({ project: { meta: { id: "pa" }, name: "a", tenantId: "t1" } });
  await projects.create({ project: { meta: { id: "pb" }, name: "b", tenantId: "t1" } });
  await server.client(AdminNetworkService, admin).create({ id: "super-p1", type: NetworkType.SUPER, partition: "p1", prefixes: ["10.0.0.0/16"], defaultChildPrefixLength: { ipv4: 22 } });
  const tokens = server.client(AdminTokenService, admin);
  eve = (await tokens.create({ subject: "eve", roles: { projectRoles: { pa: ProjectRole.EDITOR } } })).secret;
  vic = (await tokens.create({ subject: "vic", roles: { projectRoles: { pa: ProjectRole.VIEWER } } })).secret;
  bob = (await tokens.create({ subject: "bob", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  operator = server.client(AdminAuditService, admin);
});

/** Entries of one subject and method, newest first. */
const entriesOf = async (subject: string, method: string) => (await operator.list({ filter: { subject, method } })).entries;

describe("the audit trail", () => {
  it("records a mutating call once, with who, what, the targets and the outcome", async () => {
    let requestId = "";
    const { network } = await server
      .client(NetworkService, eve)
      .create({ project: "pa", partition: "p1", name: "audited", labels: { team: "x" } }, { onHeader: (h) => (requestId = h.get("x-request-id") ?? "") });
    const entries = await entriesOf("eve", "NetworkService/Create");
    expect(entries).toHaveLength(1);
    const [e] = entries;
    expect(e!.method).toBe("/metal.api.v1.NetworkService/Create");
    expect(e!.outcome).toBe("ok");
    expect(e!.project).toBe("pa");
    expect(e!.targetIds).toEqual(expect.arrayContaining(["pa", "p1"]));
    expect(e!.requestId).toBe(requestId);
    expect(e!.tokenId).not.toBe("");
    expect(e!.request).toMatchObject({ project: "pa", name: "audited", labels: { team: "x" } });
    const got = await operator.get({ id: e!.id });
    expect(got.entry!.id).toBe(e!.id);
    // The network's history by its id: the create names the network it made, the delete the one it deleted.
    expect(e!.targetIds[0]).toBe(network!.id);
    await server.client(NetworkService, eve).delete({ id: network!.id, project: "pa" });
    expect((await operator.list({ filter: { targetId: network!.id } })).entries.map((x) => x.method)).toEqual(["/metal.api.v1.NetworkService/Delete", "/metal.api.v1.NetworkService/Create"]);
  });

  it("redacts secrets in the recorded request (user data here)", async () => {
    // No machine is free: the call fails, but it is recorded, with the user data replaced.
    await server
      .client(MachineService, eve)
      .create({ project: "pa", partition: "p1", size: "none", image: "none", name: "m", userData: "#cloud-config\npassword: hunter2" })
      .catch(() => undefined);
    const [e] = await entriesOf("eve", "MachineService/Create");
    expect(e).toBeDefined();
    expect(e!.outcome).not.toBe("ok");
    expect(JSON.stringify(e!.request)).not.toContain("hunter2");
    expect(e!.request).toMatchObject({ userData: "[redacted]", name: "m" });
  });

  it("records a failed call with its code, and a refused one", async () => {
    await expectCode(server.client(IPService, eve).create({ project: "pa", network: "no-such-network" }), Code.NotFound);
    const [failed] = await entriesOf("eve", "IPService/Create");
    expect(failed!.outcome).toBe("not_found");
    expect(failed!.errorMessage).toContain("no-such-network");
    await expectCode(server.client(NetworkService, bob).create({ project: "pa", partition: "p1" }), Code.PermissionDenied);
    const [refused] = await entriesOf("bob", "NetworkService/Create");
    expect(refused!.outcome).toBe("permission_denied");
    expect(refused!.project).toBe("pa");
  });

  it("a call whose transaction rolls back leaves no success, only its failure", async () => {
    const admin = server.client(AdminPartitionService, server.adminToken);
    await admin.create({ id: "dup" });
    await expectCode(admin.create({ id: "dup" }), Code.AlreadyExists);
    const entries = (await operator.list({ filter: { method: "admin.v1.PartitionService/Create", targetId: "dup" } })).entries;
    expect(entries.map((e) => e.outcome)).toEqual(["already_exists", "ok"]);
    expect((await operator.list({ filter: { outcome: "already_exists", targetId: "dup" } })).entries).toHaveLength(1);
  });

  it("records a browser console refused as it opens", async () => {
    const machineId = "00000000-0000-4000-8000-00000000c0de";
    const stream = server.client(ConsoleService, eve).attach({ project: "pa", machineId });
    await expect(
      (async () => {
        for await (const _ of stream) break;
      })(),
    ).rejects.toThrow();
    const [e] = (await operator.list({ filter: { subject: "eve", method: "ConsoleService/Attach" } })).entries;
    expect(e).toBeDefined();
    expect(e!.outcome).not.toBe("ok");
    expect(e!.targetIds).toContain(machineId);
  });

  it("records no reads", async () => {
    await server.client(NetworkService, vic).list({ project: "pa" });
    await server.client(AuditService, vic).list({ project: "pa" });
    expect((await operator.list({ filter: { subject: "vic" } })).entries).toEqual([]);
  });

  it("shows tenants their project's entries only", async () => {
    await server.client(NetworkService, bob).create({ project: "pb", partition: "p1", name: "bobs" });
    const pa = (await server.client(AuditService, vic).list({ project: "pa" })).entries;
    expect(pa.length).toBeGreaterThan(0);
    expect(pa.every((e) => e.project === "pa")).toBe(true);
    expect(pa.some((e) => e.subject === "bob" && e.request?.name === "bobs")).toBe(false);
    await expectCode(server.client(AuditService, vic).list({ project: "pb" }), Code.PermissionDenied);
    const pb = (await server.client(AuditService, bob).list({ project: "pb" })).entries;
    expect(pb.map((e) => e.subject)).toEqual(["bob"]);
  });

  it("filters and pages the operator's list", async () => {
    const all = (await operator.list({ paging: { limit: 1000 } })).entries;
    expect(all.length).toBeGreaterThan(3);
    // Newest first, and pages continue where the last one ended.
    const first = await operator.list({ paging: { limit: 2 } });
    const second = await operator.list({ paging: { limit: 2, pageToken: first.nextPageToken } });
    expect([...first.entries, ...second.entries].map((e) => e.id)).toEqual(all.slice(0, 4).map((e) => e.id));
    expect((await operator.list({ filter: { outcome: "permission_denied" } })).entries.every((e) => e.outcome === "permission_denied")).toBe(true);
    expect((await operator.list({ project: "pb" })).entries.every((e) => e.project === "pb")).toBe(true);
    const future = timestampFromDate(new Date(Date.now() + 3600_000));
    expect((await operator.list({ filter: { from: future } })).entries).toEqual([]);
    expect((await operator.list({ filter: { to: future } })).entries.length).toBe(all.length);
    await expectCode(operator.get({ id: "00000000-0000-7000-8000-000000000000" }), Code.NotFound);
  });

  it("prunes entries older than the retention", async () => {
    const db = server.app.db;
    const before = (await operator.list({ paging: { limit: 1000 } })).entries.length;
    await db.execute(sql`update audit_entries set at = now() - interval '100 days' where subject = 'bob'`);
    const deleted = await runAuditPruneJob(db, 90 * 24 * 3600_000);
    expect(deleted).toBeGreaterThan(0);
    expect((await entriesOf("bob", "")).length).toBe(0);
    expect((await operator.list({ paging: { limit: 1000 } })).entries.length).toBe(before - deleted!);
  });
});
