import { randomUUID } from "node:crypto";
import { type Client, Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Wait as metal-hammer calls it (binary gRPC, served by the lean path) next
 * to the same call over the Connect protocol (served by Connect): the real
 * interceptors decide both, with the same answers.
 */
let server: TestServer;
let fixture: PartitionFixture;
let otherPartitionToken: string;
let adminMachines: Client<typeof AdminMachineService>;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 600_000 } });
  fixture = await setUpPartition(server);
  await server.client(AdminPartitionService, server.adminToken).create({ id: "p2" });
  otherPartitionToken = (await server.client(AdminTokenService, server.adminToken).create({ subject: "p2-agents", roles: { infraPartition: "p2" } })).secret;
  adminMachines = server.client(AdminMachineService, server.adminToken);
});

afterAll(() => fixture.stopAll());

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it);
}

async function waiting(id: string): Promise<boolean> {
  return (await adminMachines.get({ id })).machine?.waiting ?? false;
}

describe("Wait over gRPC and over Connect", () => {
  it("refuses the same calls with the same code and message", async () => {
    const registered = await fixture.bootMachine("r1");
    registered.abort.abort();
    const cases: [string | undefined, { partition: string; machineId: string }, Code, string][] = [
      [undefined, { partition: "p1", machineId: registered.id }, Code.Unauthenticated, ""],
      [otherPartitionToken, { partition: "p1", machineId: registered.id }, Code.PermissionDenied, ""],
      [fixture.infraToken, { partition: "p1", machineId: "not-a-uuid" }, Code.InvalidArgument, "machine_id"],
      [fixture.infraToken, { partition: "p1", machineId: randomUUID() }, Code.NotFound, ""],
      [otherPartitionToken, { partition: "p2", machineId: registered.id }, Code.FailedPrecondition, 'is not in partition "p2"'],
    ];
    for (const [token, req, code, text] of cases) {
      const viaGrpc = await expectCode(drain(server.grpcClient(BootService, token).wait(req)), code, text);
      const viaConnect = await expectCode(drain(server.client(BootService, token).wait(req)), code, text);
      expect(viaGrpc.rawMessage, Code[code]).toBe(viaConnect.rawMessage);
    }
  });

  it("is logged and counted, with a request id, like every RPC", async () => {
    let requestId: string | null = null;
    await expectCode(
      drain(server.grpcClient(BootService, fixture.infraToken).wait({ partition: "p1", machineId: "x" }, { onHeader: (h) => (requestId = h.get("x-request-id")), headers: { "x-request-id": "wait-probe-1" } })),
      Code.InvalidArgument,
    );
    expect(requestId).toBe("wait-probe-1");
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/metal_rpc_handled_total\{service="metal\.infra\.v1\.BootService",method="Wait",code="InvalidArgument"\} [1-9]/);
  });

  it("keeps a machine waiting only while its stream is open: a passed deadline ends both", async () => {
    const m = await fixture.bootMachine("r2");
    m.abort.abort();
    await eventually("the first stream to end", async () => !(await waiting(m.id)));
    let keepalives = 0;
    let waitingWhileOpen: boolean | undefined;
    const call = (async () => {
      for await (const msg of server.grpcClient(BootService, fixture.infraToken).wait({ partition: "p1", machineId: m.id }, { timeoutMs: scaled(3_000) })) {
        if (!msg.allocation) keepalives++;
        // Asked while the stream is provably open (a keepalive just came), not after its deadline may have passed:
        // on a slow machine the stream's whole life can fall between two polls from outside.
        waitingWhileOpen ??= await waiting(m.id);
      }
    })();
    await expectCode(call, Code.DeadlineExceeded);
    expect(keepalives).toBeGreaterThan(0);
    expect(waitingWhileOpen).toBe(true);
    await eventually("the lease to be given up", async () => !(await waiting(m.id)));
  });
});
