import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const run = promisify(execFile);

let server: TestServer;
let admin: Client<typeof AdminPartitionService>;

beforeAll(async () => {
  server = await startTestServer();
  admin = server.client(AdminPartitionService, server.adminToken);
});

const valid = {
  id: "fra-equ01",
  name: "Frankfurt 1",
  description: "first partition",
  bootConfig: { imageUrl: "http://images.example/metal-hammer.img", kernelUrl: "http://images.example/vmlinuz", commandLine: "console=ttyS0" },
  mgmtServiceAddress: "mgmt.fra:4242",
  dnsServers: ["1.1.1.1", "2001:4860:4860::8888"],
  ntpServers: ["pool.ntp.org"],
  labels: { "metal.io/region": "eu" },
};

describe("partitions", () => {
  it("creates, reads back through the tenant API and lists", async () => {
    const { partition } = await admin.create(valid);
    expect(partition?.meta?.version).toBe(1n);
    expect(partition?.bootConfig?.kernelUrl).toBe(valid.bootConfig.kernelUrl);
    const tenantView = server.client(PartitionService, server.adminToken);
    const got = await tenantView.get({ id: "fra-equ01" });
    expect(got.partition?.dnsServers).toEqual(valid.dnsServers);
    expect(got.partition?.labels).toEqual(valid.labels);
    const list = await admin.list({});
    expect(list.partitions.map((p) => p.id)).toContain("fra-equ01");
  });

  it("refuses a second partition with the same id", async () => {
    await expectCode(
      admin.create({ ...valid, id: "dup-1" }).then(() => admin.create({ ...valid, id: "dup-1" })),
      Code.AlreadyExists,
      '"dup-1" already exists',
    );
  });

  it.each([
    ["id", { id: "Bad_ID" }, "id:"],
    ["empty id", { id: "" }, "id: is required"],
    ["long id", { id: "a".repeat(64) }, "id: must be at most 63"],
    ["kernel url", { bootConfig: { ...valid.bootConfig, kernelUrl: "not a url" } }, "boot_config.kernel_url"],
    ["image url scheme", { bootConfig: { ...valid.bootConfig, imageUrl: "ftp://x/y" } }, "boot_config.image_url"],
    ["dns server", { dnsServers: ["1.1.1.300"] }, "dns_servers[0]"],
    ["duplicate dns", { dnsServers: ["1.1.1.1", "1.1.1.1"] }, "dns_servers[1]: is a duplicate"],
    ["ntp server", { ntpServers: ["bad host!"] }, "ntp_servers[0]"],
    ["mgmt address", { mgmtServiceAddress: "no-port" }, "mgmt_service_address"],
    ["label key", { labels: { "bad key": "x" } }, "labels"],
    ["name length", { name: "n".repeat(200) }, "name: must be at most 128"],
    ["control characters", { description: "a\u0001b" }, "description: must not contain control characters"],
  ])("refuses an invalid %s and stores nothing", async (_what, patch, message) => {
    const id = (patch as { id?: string }).id ?? "invalid-one";
    await expectCode(admin.create({ ...valid, ...patch, id }), Code.InvalidArgument, message);
    const list = await admin.list({ paging: { limit: 1000 } });
    expect(list.partitions.map((p) => p.id)).not.toContain(id);
  });

  it("updates with optimistic locking", async () => {
    const { partition } = await admin.create({ ...valid, id: "upd-1" });
    const v1 = partition!.meta!.version;
    const r = await admin.update({ id: "upd-1", version: v1, name: "renamed", dnsServers: { values: [] } });
    expect(r.partition?.name).toBe("renamed");
    expect(r.partition?.dnsServers).toEqual([]);
    expect(r.partition?.ntpServers).toEqual(valid.ntpServers);
    expect(r.partition?.meta?.version).toBe(v1 + 1n);
    // A second writer that read version 1 loses.
    await expectCode(admin.update({ id: "upd-1", version: v1, name: "stale" }), Code.Aborted, "was changed by someone else");
    expect((await admin.list({})).partitions.find((p) => p.id === "upd-1")?.name).toBe("renamed");
    await expectCode(admin.update({ id: "upd-1", name: "x" }), Code.InvalidArgument, "version: is required");
    await expectCode(admin.update({ id: "nope-1", version: 1n, name: "x" }), Code.NotFound, 'partition "nope-1" not found');
  });

  it("lets exactly one of many concurrent updates of the same version win", async () => {
    const { partition } = await admin.create({ ...valid, id: "race-1" });
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => admin.update({ id: "race-1", version: partition!.meta!.version, name: `writer-${i}` })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.Aborted);
  });

  it("pages through the list in id order", async () => {
    for (const id of ["page-a", "page-b", "page-c", "page-d", "page-e"]) await admin.create({ ...valid, id });
    const seen: string[] = [];
    let pageToken = "";
    do {
      const r = await admin.list({ paging: { limit: 2, pageToken } });
      expect(r.partitions.length).toBeLessThanOrEqual(2);
      seen.push(...r.partitions.map((p) => p.id));
      pageToken = r.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual([...seen].sort());
    expect(seen.filter((id) => id.startsWith("page-"))).toEqual(["page-a", "page-b", "page-c", "page-d", "page-e"]);
    await expectCode(admin.list({ paging: { limit: 2, pageToken: "garbage" } }), Code.InvalidArgument, "paging.page_token");
    await expectCode(admin.list({ paging: { limit: 5000 } }), Code.InvalidArgument, "paging.limit");
  });

  it("deletes", async () => {
    await admin.create({ ...valid, id: "del-1" });
    const r = await admin.delete({ id: "del-1" });
    expect(r.partition?.id).toBe("del-1");
    await expectCode(server.client(PartitionService, server.adminToken).get({ id: "del-1" }), Code.NotFound, "not found");
    await expectCode(admin.delete({ id: "del-1" }), Code.NotFound, "not found");
  });

  it("answers curl with Connect JSON, and 401 without a token", async () => {
    const body = JSON.stringify({ id: "curl-1", name: "from curl", dnsServers: ["9.9.9.9"] });
    const url = `${server.url}/metal.admin.v1.PartitionService/Create`;
    const ok = await run("curl", ["-sS", "-w", "\n%{http_code}", "-X", "POST", url, "-H", `Authorization: Bearer ${server.adminToken}`, "-H", "Content-Type: application/json", "-d", body]);
    const [json, status] = ok.stdout.trim().split("\n");
    expect(status).toBe("200");
    expect(JSON.parse(json!).partition).toMatchObject({ id: "curl-1", name: "from curl", dnsServers: ["9.9.9.9"], meta: { version: "1" } });

    const denied = await run("curl", ["-sS", "-w", "\n%{http_code}", "-X", "POST", url, "-H", "Content-Type: application/json", "-d", body.replace("curl-1", "curl-2")]);
    const [errJson, errStatus] = denied.stdout.trim().split("\n");
    expect(errStatus).toBe("401");
    expect(JSON.parse(errJson!)).toMatchObject({ code: "unauthenticated" });

    const garbage = await run("curl", ["-sS", "-w", "\n%{http_code}", "-X", "POST", url, "-H", `Authorization: Bearer ${server.adminToken}`, "-H", "Content-Type: application/json", "-d", "{not json"]);
    const [gJson, gStatus] = garbage.stdout.trim().split("\n");
    expect(gStatus).toBe("400");
    expect(JSON.parse(gJson!)).toMatchObject({ code: "invalid_argument" });
    const list = await admin.list({ paging: { limit: 1000 } });
    expect(list.partitions.map((p) => p.id)).not.toContain("curl-2");
  });

  it("answers gRPC over h2c on the same port, also to buf curl", async () => {
    const grpc = server.grpcClient(AdminPartitionService, server.adminToken);
    await grpc.create({ ...valid, id: "grpc-1" });
    expect((await grpc.list({ paging: { limit: 1000 } })).partitions.map((p) => p.id)).toContain("grpc-1");
    const out = await run("npx", [
      "buf",
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--schema",
      "proto",
      "-H",
      `Authorization: Bearer ${server.adminToken}`,
      "-d",
      JSON.stringify({ id: "grpc-1" }),
      `${server.url}/metal.api.v1.PartitionService/Get`,
    ]);
    expect(JSON.parse(out.stdout).partition.id).toBe("grpc-1");
  });
});
