import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { SizeService as AdminSizeService } from "../../gen/metal/admin/v1/size_pb.js";
import { SizeReservationService as AdminSizeReservationService } from "../../gen/metal/admin/v1/size_reservation_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { SizeService, SizeConstraintType as T } from "../../gen/metal/api/v1/size_pb.js";
import { SizeReservationService } from "../../gen/metal/api/v1/size_reservation_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let sizes: Client<typeof AdminSizeService>;
let reservations: Client<typeof AdminSizeReservationService>;

const GiB = 2n ** 30n;
const cores = (min: bigint, max: bigint, identifier = "") => ({ type: T.CORES, min, max, identifier });
const memory = (min: bigint, max: bigint) => ({ type: T.MEMORY, min: min * GiB, max: max * GiB });

beforeAll(async () => {
  server = await startTestServer();
  sizes = server.client(AdminSizeService, server.adminToken);
  reservations = server.client(AdminSizeReservationService, server.adminToken);
  const partitions = server.client(AdminPartitionService, server.adminToken);
  await partitions.create({ id: "p-a" });
  await partitions.create({ id: "p-b" });
  await server.client(MdTenantService, server.adminToken).create({ tenant: { meta: { id: "t1" }, name: "tenant one" } });
  const projects = server.client(MdProjectService, server.adminToken);
  await projects.create({ project: { meta: { id: "proj-1" }, name: "one", tenantId: "t1" } });
  await projects.create({ project: { meta: { id: "proj-2" }, name: "two", tenantId: "t1" } });
});

describe("sizes", () => {
  it("creates, reads through the tenant API, updates and deletes", async () => {
    const { size } = await sizes.create({ id: "c1-small", name: "small", constraints: [cores(4n, 4n), memory(16n, 16n)] });
    expect(size?.constraints[1]).toMatchObject({ type: T.MEMORY, min: 16n * GiB });
    const viaApi = await server.client(SizeService, server.adminToken).get({ id: "c1-small" });
    expect(viaApi.size?.name).toBe("small");
    const up = await sizes.update({ id: "c1-small", version: size!.meta!.version, description: "four cores" });
    expect(up.size?.description).toBe("four cores");
    expect(up.size?.constraints).toHaveLength(2);
    await expectCode(sizes.update({ id: "c1-small", version: size!.meta!.version, description: "stale" }), Code.Aborted);
    await sizes.delete({ id: "c1-small" });
    await expectCode(sizes.delete({ id: "c1-small" }), Code.NotFound);
  });

  it.each([
    ["unknown id", { id: "unknown", constraints: [cores(1n, 1n)] }, "reserved for machines"],
    ["bad id", { id: "C1 Small", constraints: [cores(1n, 1n)] }, "id:"],
    ["no constraints", { id: "empty-size", constraints: [] }, "at least one constraint"],
    ["max < min", { id: "inverted", constraints: [cores(8n, 4n)] }, "constraints[0].max"],
    ["memory identifier", { id: "memid", constraints: [{ type: T.MEMORY, min: 1n, max: 2n, identifier: "x*" }] }, "memory constraints take no identifier"],
    ["gpu without identifier", { id: "gpuid", constraints: [{ type: T.GPU, min: 1n, max: 1n }] }, "need an identifier"],
    ["unspecified type", { id: "notype", constraints: [{ min: 1n, max: 1n }] }, "constraints[0].type"],
    ["huge amount", { id: "huge", constraints: [cores(1n, 2n ** 60n)] }, "below 2^53"],
  ])("refuses %s and stores nothing", async (_name, req, message) => {
    await expectCode(sizes.create(req), Code.InvalidArgument, message);
    const all = await sizes.list({ paging: { limit: 1000 } });
    expect(all.sizes.map((s) => s.id)).not.toContain(req.id);
  });

  it("refuses overlapping sizes, also on update", async () => {
    await sizes.create({ id: "m1", constraints: [cores(8n, 16n), memory(32n, 64n)] });
    await expectCode(sizes.create({ id: "m2", constraints: [cores(16n, 32n), memory(64n, 128n)] }), Code.InvalidArgument, 'overlap with size "m1"');
    const { size: m3 } = await sizes.create({ id: "m3", constraints: [cores(17n, 32n), memory(32n, 64n)] });
    await expectCode(sizes.update({ id: "m3", version: m3!.meta!.version, constraints: { values: [cores(12n, 32n), memory(32n, 64n)] } }), Code.InvalidArgument, 'overlap with size "m1"');
  });

  it("lets exactly one of many parallel overlapping creates win", async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => sizes.create({ id: `race-${i}`, constraints: [cores(64n, 64n + BigInt(i)), memory(512n, 512n)] })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.InvalidArgument);
  });
});

describe("size reservations", () => {
  beforeAll(async () => {
    await sizes.create({ id: "res-size", constraints: [cores(2n, 2n), memory(4n, 4n)] });
  });

  it("needs an existing size, project and partitions", async () => {
    const base = { sizeId: "res-size", project: "proj-1", partitionIds: ["p-a"], amount: 2 };
    await expectCode(reservations.create({ ...base, sizeId: "nope" }), Code.NotFound, 'size "nope" not found');
    await expectCode(reservations.create({ ...base, project: "nope" }), Code.NotFound, 'project "nope" not found');
    await expectCode(reservations.create({ ...base, partitionIds: ["p-a", "nope"] }), Code.NotFound, 'partition "nope" not found');
    await expectCode(reservations.create({ ...base, partitionIds: [] }), Code.InvalidArgument, "partition_ids: at least one");
    await expectCode(reservations.create({ ...base, partitionIds: ["p-a", "p-a"] }), Code.InvalidArgument, "partition_ids[1]: is a duplicate");
    await expectCode(reservations.create({ ...base, amount: 0 }), Code.InvalidArgument, "amount: must be at least 1");
    expect((await reservations.list({})).sizeReservations).toEqual([]);
  });

  it("keeps the size from being deleted while it is reserved", async () => {
    const { sizeReservation: r } = await reservations.create({ sizeId: "res-size", project: "proj-1", partitionIds: ["p-a", "p-b"], amount: 2 });
    await expectCode(sizes.delete({ id: "res-size" }), Code.FailedPrecondition, `size "res-size" is still used by 1 size reservation (${r!.id}); delete them first`);
    const filtered = await reservations.list({ partitionId: "p-b" });
    expect(filtered.sizeReservations.map((x) => x.id)).toEqual([r!.id]);
    expect((await reservations.list({ project: "proj-2" })).sizeReservations).toEqual([]);
    const up = await reservations.update({ id: r!.id, version: r!.meta!.version, amount: 5 });
    expect(up.sizeReservation?.amount).toBe(5);
    await expectCode(reservations.update({ id: r!.id, version: r!.meta!.version, amount: 6 }), Code.Aborted);
  });

  it("shows a project's reservations to its members only", async () => {
    const tokens = server.client(AdminTokenService, server.adminToken);
    const editor = (await tokens.create({ subject: "pat", roles: { projectRoles: { "proj-1": ProjectRole.EDITOR } } })).secret;
    const tenantViewer = (await tokens.create({ subject: "tia", roles: { tenantRoles: { t1: TenantRole.VIEWER } } })).secret;
    const mine = await server.client(SizeReservationService, editor).list({ project: "proj-1" });
    expect(mine.sizeReservations.length).toBeGreaterThan(0);
    // A project editor cannot touch another project.
    await expectCode(server.client(SizeReservationService, editor).list({ project: "proj-2" }), Code.PermissionDenied, 'needs project viewer of "proj-2"');
    await expectCode(server.client(SizeReservationService, editor).get({ id: mine.sizeReservations[0]!.id, project: "proj-2" }), Code.PermissionDenied);
    // Tenant roles reach the tenant's projects (looked up in masterdata).
    await server.client(SizeReservationService, tenantViewer).list({ project: "proj-2" });
    await expectCode(server.client(SizeReservationService, tenantViewer).list({ project: "not-in-t1" }), Code.PermissionDenied);
  });
});
