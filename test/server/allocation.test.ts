import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition, type WaitingMachine } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

let server: TestServer;
let fixture: PartitionFixture;
let tenantMachines: Client<typeof MachineService>;
const waiting = new Map<string, WaitingMachine>();

beforeAll(async () => {
  // The database recheck is pushed out of reach: a Wait stream can only learn of its allocation through the bus.
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 600_000 } });
  fixture = await setUpPartition(server);
  // Two machines per rack.
  for (const rack of ["r1", "r1", "r2", "r2"] as const) {
    const m = await fixture.bootMachine(rack);
    waiting.set(m.id, m);
  }
  tenantMachines = server.client(MachineService, server.adminToken);
});

afterAll(() => fixture.stopAll());

const request = (project: string, network: string, name: string) => ({ project, partition: "p1", size: "s1", image: "debian-12", name, networks: [network] });

describe("machine allocation", () => {
  let first: { id: string; rack: string };

  it("allocates a waiting machine with IPs of every family, an ASN, image and layout, and tells its Wait stream at once", async () => {
    const { machine } = await tenantMachines.create(request("pa", fixture.primary.pa, "web-1"));
    const a = machine!.allocation!;
    expect(a).toMatchObject({ project: "pa", image: "debian-12.0.20250101", filesystemLayout: "s1-default", hostname: "web-1" });
    expect(a.asn).toBeGreaterThan(4_210_000_000n);
    expect(a.networks[0]).toMatchObject({ network: fixture.primary.pa, primary: true });
    expect(a.networks[0]!.ips).toEqual([expect.stringMatching(/^10\.0\./), expect.stringMatching(/^2001:db8:/)]);
    const delivered = await waiting.get(machine!.id)!.allocation;
    expect(delivered?.uuid).toBe(a.uuid);
    first = { id: machine!.id, rack: machine!.rack };
  });

  it("spreads a project's machines over racks", async () => {
    const { machine } = await tenantMachines.create(request("pa", fixture.primary.pa, "web-2"));
    expect(machine!.rack).not.toBe(first.rack);
  });

  it("enforces the machine quota", async () => {
    await expectCode(tenantMachines.create(request("pa", fixture.primary.pa, "web-3")), Code.ResourceExhausted, 'project "pa" has reached its quota of 2 machine(s)');
  });

  it("never hands one machine out twice under parallel allocations", async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => tenantMachines.create(request("pb", fixture.primary.pb, `db-${i}`))));
    const won = results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<{ machine?: { id: string } }>).value.machine!.id);
    expect(won).toHaveLength(2);
    expect(new Set(won).size).toBe(2);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.ResourceExhausted);
    const listed = await tenantMachines.list({ project: "pb" });
    expect(listed.machines.map((m) => m.id).sort()).toEqual([...won].sort());
  });

  it("refuses bad requests and networks of other projects, leaving nothing behind", async () => {
    const pb = fixture.primary.pb;
    // Another project's private network reads as one that does not exist.
    await expectCode(tenantMachines.create(request("pb", fixture.primary.pa, "x")), Code.NotFound, `network "${fixture.primary.pa}" not found`);
    await expectCode(tenantMachines.create({ ...request("pb", pb, "x"), image: "fedora" }), Code.NotFound, 'image "fedora"');
    await expectCode(tenantMachines.create({ ...request("pb", pb, "x"), sshKeys: ["not a key"] }), Code.InvalidArgument, "ssh_keys[0]");
    await expectCode(tenantMachines.create(request("pb", pb, "Bad Name")), Code.InvalidArgument, "name");
    await expectCode(tenantMachines.create({ ...request("pb", pb, "x"), networks: [] }), Code.InvalidArgument, "networks");
    // No machine waits any more: nothing to allocate, and no IP or ASN was taken by the failed attempts.
    await expectCode(tenantMachines.create(request("pb", pb, "late")), Code.ResourceExhausted, "no s1 machine is waiting");
    const ips = (await server.app.db.execute(sql`select count(*)::int as n from ips where machine_id is not null`)) as unknown as { rows: { n: number }[] };
    expect(ips.rows[0]!.n).toBe(8); // 4 machines x 2 families
    const asns = (await server.app.db.execute(sql`select count(*)::int as n from asns`)) as unknown as { rows: { n: number }[] };
    expect(asns.rows[0]!.n).toBe(4);
  });

  it("keeps streams alive while waiting and clears the flag when a stream ends", async () => {
    const m = await fixture.bootMachine("r1");
    await eventually("two keepalives on the open stream", () => m.keepalives >= 2);
    m.abort.abort();
    const admin = server.client(AdminMachineService, server.adminToken);
    await eventually("the waiting flag to clear", async () => (await admin.get({ id: m.id })).machine?.waiting === false);
    await expectCode(tenantMachines.create(request("pb", fixture.primary.pb, "nobody-waits")), Code.ResourceExhausted);
  });
});
