import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { IPService as AdminIPService } from "../../gen/metal/admin/v1/ip_pb.js";
import { NetworkService as AdminNetworkService } from "../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { IPService, IpType } from "../../gen/metal/api/v1/ip_pb.js";
import { AddressFamily, NetworkService, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let adminNets: Client<typeof AdminNetworkService>;
let nets: Client<typeof NetworkService>;
let ipsApi: Client<typeof IPService>;

const superNet = {
  id: "super-p1",
  type: NetworkType.SUPER,
  partition: "p1",
  prefixes: ["10.0.0.0/16", "2001:db8::/48"],
  defaultChildPrefixLength: { ipv4: 22, ipv6: 64 },
};

/** The first of `candidates` that overlaps no child prefix allocated so far. */
async function freePrefix(candidates: string[]): Promise<string> {
  for (const c of candidates) {
    const taken = (await server.app.db.execute(sql`select 1 from prefixes where network_id <> 'super-p1' and prefix && ${c}::cidr limit 1`)) as unknown as { rows: unknown[] };
    if (taken.rows.length === 0) return c;
  }
  throw new Error("no free prefix among the candidates");
}

beforeAll(async () => {
  server = await startTestServer();
  const admin = server.adminToken;
  adminNets = server.client(AdminNetworkService, admin);
  nets = server.client(NetworkService, admin);
  ipsApi = server.client(IPService, admin);
  await server.client(AdminPartitionService, admin).create({ id: "p1" });
  await server.client(AdminPartitionService, admin).create({ id: "p2" });
  await server.client(MdTenantService, admin).create({ tenant: { meta: { id: "t1" }, name: "t1" } });
  const projects = server.client(MdProjectService, admin);
  await projects.create({ project: { meta: { id: "pa" }, name: "a", tenantId: "t1", quotas: { network: { max: 3 }, ip: { max: 6 } } } });
  await projects.create({ project: { meta: { id: "pb" }, name: "b", tenantId: "t1" } });
  await projects.create({ project: { meta: { id: "pq" }, name: "quota", tenantId: "t1", quotas: { network: { max: 2 }, ip: { max: 5 } } } });
  await projects.create({ project: { meta: { id: "pd" }, name: "dual", tenantId: "t1", quotas: { ip: { max: 3 } } } });
  await adminNets.create(superNet);
  await adminNets.create({ id: "internet", type: NetworkType.EXTERNAL, prefixes: ["185.1.2.0/24"], destinationPrefixes: ["0.0.0.0/0"], vrf: 104009, nat: true });
});

describe("operator networks", () => {
  it("refuses a second super network in a partition and overlapping prefixes", async () => {
    await expectCode(adminNets.create({ ...superNet, id: "super-again", prefixes: ["10.99.0.0/16"], defaultChildPrefixLength: { ipv4: 24 } }), Code.AlreadyExists, "already has a super network");
    await expectCode(adminNets.create({ id: "clash", type: NetworkType.EXTERNAL, prefixes: ["10.0.128.0/17"] }), Code.AlreadyExists, 'overlaps a prefix of network "super-p1"');
    await expectCode(adminNets.create({ id: "vrf-clash", type: NetworkType.EXTERNAL, prefixes: ["192.0.2.0/24"], vrf: 104009 }), Code.AlreadyExists, "vrf 104009");
    const all = await adminNets.list({ paging: { limit: 1000 } });
    expect(all.networks.map((n) => n.id).sort()).toEqual(["internet", "super-p1"]);
  });

  it.each([
    ["not a CIDR", { prefixes: ["banana"] }, "prefixes[0]"],
    ["host bits set", { prefixes: ["10.50.0.1/16"] }, "host bits set; did you mean 10.50.0.0/16"],
    ["absurd length", { prefixes: ["10.50.0.0/40"] }, "invalid prefix length"],
    ["destination of another family", { prefixes: ["10.50.0.0/16"], destinationPrefixes: ["::/0"] }, "destination_prefixes[0]: is IPv6"],
    ["child length not longer", { type: NetworkType.SUPER, partition: "p2", prefixes: ["10.50.0.0/16"], defaultChildPrefixLength: { ipv4: 16 } }, "default_child_prefix_length.ipv4"],
    [
      "missing child length",
      { type: NetworkType.SUPER, partition: "p2", prefixes: ["10.50.0.0/16", "2001:db8:50::/48"], defaultChildPrefixLength: { ipv4: 24 } },
      "default_child_prefix_length.ipv6: is required",
    ],
    ["super without partition", { type: NetworkType.SUPER, prefixes: ["10.50.0.0/16"], defaultChildPrefixLength: { ipv4: 24 } }, "partition: is required"],
    ["nat on underlay", { type: NetworkType.UNDERLAY, partition: "p2", prefixes: ["10.50.0.0/16"], nat: true }, "nat:"],
    ["no type", { type: NetworkType.UNSPECIFIED, prefixes: ["10.50.0.0/16"] }, "type: must be set"],
    ["child type", { type: NetworkType.CHILD, prefixes: ["10.50.0.0/16"] }, "must be super, underlay or external"],
    ["overlapping own prefixes", { prefixes: ["10.50.0.0/16", "10.50.1.0/24"] }, "prefixes[1]: overlaps prefixes[0]"],
    ["vrf out of range", { prefixes: ["10.50.0.0/16"], vrf: 200000 }, "vrf: must be between"],
  ])("refuses %s and stores nothing", async (_n, patch, message) => {
    await expectCode(adminNets.create({ id: "bad-net", type: NetworkType.EXTERNAL, ...patch } as never), Code.InvalidArgument, message);
    await expectCode(adminNets.get({ id: "bad-net" }), Code.NotFound);
  });

  it("answers NotFound for unknown partitions and projects", async () => {
    await expectCode(adminNets.create({ id: "nope-net", type: NetworkType.UNDERLAY, partition: "nowhere", prefixes: ["10.60.0.0/16"] }), Code.NotFound, 'partition "nowhere"');
    await expectCode(adminNets.create({ id: "nope-net", type: NetworkType.EXTERNAL, project: "ghost", prefixes: ["10.60.0.0/16"] }), Code.NotFound, 'project "ghost"');
  });
});

describe("tenant networks", () => {
  it("allocates a dual-stack child network with a VRF, and the super network counts it", async () => {
    const { network } = await nets.create({ project: "pa", partition: "p1", name: "pa-net" });
    expect(network?.type).toBe(NetworkType.CHILD);
    expect(network?.parentNetworkId).toBe("super-p1");
    expect(network?.prefixes).toHaveLength(2);
    expect(network?.prefixes[0]).toMatch(/^10\.0\.\d+\.0\/22$/);
    expect(network?.prefixes[1]).toMatch(/^2001:db8:0:[0-9a-f]+::\/64$/);
    expect(network?.vrf).toBeGreaterThan(0);
    const { network: sup } = await adminNets.get({ id: "super-p1" });
    expect(sup?.consumption?.ipv4?.usedPrefixes).toBeGreaterThanOrEqual(1n);
    expect(sup?.consumption?.ipv4?.availablePrefixes).toBe(64n);
    expect(sup?.consumption?.ipv6?.availablePrefixes).toBe(65536n);
  });

  it("honours address family and length, and validates them", async () => {
    const { network } = await nets.create({ project: "pb", partition: "p1", addressFamily: AddressFamily.V4, length: { ipv4: 26 } });
    expect(network?.prefixes).toEqual([expect.stringMatching(/\/26$/)]);
    await expectCode(nets.create({ project: "pb", partition: "p1", length: { ipv4: 12 } }), Code.InvalidArgument, "length.ipv4");
    await expectCode(nets.create({ project: "pb", partition: "p1", addressFamily: AddressFamily.V6, length: { ipv4: 24 } }), Code.InvalidArgument, "IPv4 was not asked for");
    await expectCode(nets.create({ project: "pb", partition: "p2" }), Code.FailedPrecondition, 'partition "p2" has no super network');
    await expectCode(nets.create({ project: "ghost", partition: "p1" }), Code.NotFound, 'project "ghost"');
  });

  it("allocates exactly the prefixes asked for, inside the super network only", async () => {
    // The tests before took child prefixes at random places of the super network: ask for ones none of them took.
    const v4 = await freePrefix(Array.from({ length: 56 }, (_, i) => `10.0.${200 + i}.0/24`));
    const v6 = await freePrefix(Array.from({ length: 56 }, (_, i) => `2001:db8:0:${(0xff - i).toString(16)}00::/56`));
    const { network } = await nets.create({ project: "pb", partition: "p1", prefixes: [v4, v6] });
    expect(network?.prefixes).toEqual([v4, v6]);
    await expectCode(nets.create({ project: "pb", partition: "p1", prefixes: [v4.replace(".0/24", ".128/25")] }), Code.AlreadyExists, "overlaps a network already allocated");
    await expectCode(nets.create({ project: "pb", partition: "p1", prefixes: ["10.1.0.0/24"] }), Code.InvalidArgument, 'prefixes[0]: 10.1.0.0/24 is not inside super network "super-p1"');
    await expectCode(nets.create({ project: "pb", partition: "p1", prefixes: ["10.0.201.1/24"] }), Code.InvalidArgument, "host bits set");
    await expectCode(nets.create({ project: "pb", partition: "p1", prefixes: ["10.0.202.0/24", "10.0.203.0/24"] }), Code.InvalidArgument, "a second IPv4 prefix");
    await expectCode(nets.create({ project: "pb", partition: "p1", prefixes: ["10.0.0.0/16"] }), Code.InvalidArgument, "is not inside");
    const mine = await nets.list({ project: "pb" });
    expect(mine.networks.filter((n) => n.prefixes.includes("10.1.0.0/24") || n.prefixes.includes("10.0.202.0/24"))).toEqual([]);
  });

  it("enforces the network quota under concurrency", async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => nets.create({ project: "pq", partition: "p1", addressFamily: AddressFamily.V4 })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(2);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.ResourceExhausted);
  });
});

describe("IPs", () => {
  let own: string;
  beforeAll(async () => {
    own = (await nets.create({ project: "pa", partition: "p1", name: "ips-here" })).network!.id;
  });

  it("allocates IPv4 by default, IPv6 on request, a given address once", async () => {
    const v4 = (await ipsApi.create({ project: "pa", network: own, name: "web" })).ip!;
    expect(v4.ip).toMatch(/^10\.0\./);
    expect(v4.type).toBe(IpType.EPHEMERAL);
    const v6 = (await ipsApi.create({ project: "pa", network: own, addressFamily: AddressFamily.V6, type: IpType.STATIC })).ip!;
    expect(v6.ip).toMatch(/^2001:db8:/);
    const net = (await nets.get({ id: own, project: "pa" })).network!;
    const base = net.prefixes[0]!.replace(/\.0\/22$/, "");
    const given = `${base}.77`;
    expect((await ipsApi.create({ project: "pa", network: own, ip: given })).ip?.ip).toBe(given);
    await expectCode(ipsApi.create({ project: "pa", network: own, ip: given }), Code.AlreadyExists, `ip ${given} is already allocated`);
    await expectCode(ipsApi.create({ project: "pa", network: own, ip: "192.168.1.1" }), Code.InvalidArgument, "is not inside network");
    await expectCode(ipsApi.create({ project: "pa", network: own, ip: "10.0.0.999" }), Code.InvalidArgument, "ip:");
    await expectCode(ipsApi.create({ project: "pa", network: own, ip: given, addressFamily: AddressFamily.V4 }), Code.InvalidArgument, "cannot be combined");
    // Networks a project may not use read as networks that do not exist (issue 12, item 16): one answer for outsiders.
    await expectCode(ipsApi.create({ project: "pa", network: "super-p1" }), Code.NotFound, 'network "super-p1" not found');
    await expectCode(ipsApi.create({ project: "pb", network: own }), Code.NotFound, `network "${own}" not found`);
    expect((await ipsApi.create({ project: "pb", network: "internet" })).ip?.ip).toMatch(/^185\.1\.2\./);
  });

  it("allocates one IP per family with dual stack, both or neither, counting both against the quota", async () => {
    const dualNet = (await nets.create({ project: "pd", partition: "p1" })).network!.id;
    const v4only = (await nets.create({ project: "pd", partition: "p1", addressFamily: AddressFamily.V4 })).network!.id;
    const first = await ipsApi.create({ project: "pd", network: dualNet, addressFamily: AddressFamily.DUAL_STACK, name: "both" });
    expect(first.ips.map((i) => i.ip)).toEqual([expect.stringMatching(/^10\.0\./), expect.stringMatching(/^2001:db8:/)]);
    expect(first.ip?.id).toBe(first.ips[0]!.id);
    expect(new Set(first.ips.map((i) => i.id)).size).toBe(2);
    await expectCode(ipsApi.create({ project: "pd", network: v4only, addressFamily: AddressFamily.DUAL_STACK }), Code.InvalidArgument, "has no IPv6 prefix");
    await ipsApi.create({ project: "pd", network: v4only });
    // Two more would make four of three.
    await expectCode(ipsApi.create({ project: "pd", network: dualNet, addressFamily: AddressFamily.DUAL_STACK }), Code.ResourceExhausted, "quota of 3");
    expect((await ipsApi.list({ project: "pd" })).ips).toHaveLength(3);
  });

  it("updates with optimistic locking; a static IP stays static", async () => {
    const ip = (await ipsApi.create({ project: "pa", network: own, type: IpType.STATIC })).ip!;
    await expectCode(ipsApi.update({ id: ip.id, project: "pa", version: ip.meta!.version, type: IpType.EPHEMERAL }), Code.InvalidArgument, "static IP cannot become ephemeral");
    const up = await ipsApi.update({ id: ip.id, project: "pa", version: ip.meta!.version, name: "renamed" });
    expect(up.ip?.name).toBe("renamed");
    await expectCode(ipsApi.update({ id: ip.id, project: "pa", version: ip.meta!.version, name: "stale" }), Code.Aborted);
    await expectCode(ipsApi.get({ id: ip.id, project: "pb" }), Code.NotFound);
  });

  it("refuses to free an IP a machine uses", async () => {
    const ip = (await ipsApi.create({ project: "pa", network: own })).ip!;
    await server.app.db.execute(sql`update ips set machine_id = 'machine-1' where id = ${ip.id}`);
    await expectCode(ipsApi.delete({ id: ip.id, project: "pa" }), Code.FailedPrecondition, 'used by machine "machine-1"');
    expect((await ipsApi.get({ id: ip.id, project: "pa" })).ip?.machineId).toBe("machine-1");
  });

  it("enforces the IP quota under concurrency", async () => {
    const net = (await nets.create({ project: "pq", partition: "p1", addressFamily: AddressFamily.V4 }).catch(() => undefined))?.network?.id;
    const target = net ?? (await nets.list({ project: "pq" })).networks[0]!.id;
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => ipsApi.create({ project: "pq", network: target })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
    const listed = await server.client(AdminIPService, server.adminToken).list({ project: "pq" });
    expect(listed.ips).toHaveLength(5);
  });

  it("frees: a network only without IPs, then its VRF and prefixes are reusable", async () => {
    const { network } = await nets.create({ project: "pb", partition: "p1", addressFamily: AddressFamily.V4 });
    const ip = (await ipsApi.create({ project: "pb", network: network!.id })).ip!;
    await expectCode(nets.delete({ id: network!.id, project: "pb" }), Code.FailedPrecondition, "still has 1 allocated IP");
    await expectCode(adminNets.delete({ id: "super-p1" }), Code.FailedPrecondition, "child network");
    await ipsApi.delete({ id: ip.id, project: "pb" });
    await expectCode(ipsApi.delete({ id: ip.id, project: "pb" }), Code.NotFound);
    const freed = await nets.delete({ id: network!.id, project: "pb" });
    expect(freed.network?.prefixes).toEqual(network!.prefixes);
    await expectCode(nets.get({ id: network!.id, project: "pb" }), Code.NotFound);
  });
});

describe("project scoping", () => {
  it("keeps viewers from allocating and editors out of other projects", async () => {
    const tokens = server.client(AdminTokenService, server.adminToken);
    const viewer = (await tokens.create({ subject: "vic", roles: { projectRoles: { pa: ProjectRole.VIEWER } } })).secret;
    const editor = (await tokens.create({ subject: "eve", roles: { projectRoles: { pa: ProjectRole.EDITOR } } })).secret;
    await server.client(NetworkService, viewer).list({ project: "pa" });
    await expectCode(server.client(NetworkService, viewer).create({ project: "pa", partition: "p1" }), Code.PermissionDenied, "needs project editor");
    await expectCode(server.client(NetworkService, editor).create({ project: "pb", partition: "p1" }), Code.PermissionDenied, 'of "pb"');
    await expectCode(server.client(IPService, editor).list({ project: "pb" }), Code.PermissionDenied);
  });
});
