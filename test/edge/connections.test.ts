import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { BmcAgent } from "../../edge/bmc/agent.js";
import { MetalCore } from "../../edge/core/metal-core.js";
import { SimBmcs } from "../../edge/sim/bmc.js";
import { SimSwitch } from "../../edge/sim/switch.js";
import { ConnectionService, type DaemonConnection, DaemonKind } from "../../gen/metal/admin/v1/connection_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole } from "../../gen/metal/api/v1/common_pb.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let fixture: PartitionFixture;
let dir: string;
let viewer: string;

const list = (req: { partition?: string; kind?: DaemonKind } = {}, token = viewer) =>
  server
    .client(ConnectionService, token)
    .list(req)
    .then((r) => r.connections);
const find = (cs: DaemonConnection[], kind: DaemonKind, id: string) => cs.find((c) => c.kind === kind && c.id === id);

function startBmcAgent(): { stop(): Promise<void> } {
  const token = fixture.infraToken;
  const agent = new BmcAgent({
    transport: createTransport({ baseUrl: server.url, token }),
    partition: "p1",
    agent: "bmc-a",
    leaseFile: join(dir, "dhcpd.leases"),
    stateDir: join(dir, "bmc-state"),
    adapter: new SimBmcs(),
    credentials: { user: "ADMIN", password: "ADMIN", interface: "lanplus", port: 623 },
    timing: { pollMs: 1_000, heartbeatMs: 100, idleMs: 2_000, backoff: { initialMs: 20, maxMs: 200 } },
  });
  const abort = new AbortController();
  const done = agent.run(abort.signal);
  return {
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  dir = await mkdtemp(join(tmpdir(), "connections-test-"));
  viewer = (await server.client(AdminTokens, server.adminToken).create({ subject: "ops", roles: { adminRole: AdminRole.VIEWER } })).secret;
});

afterAll(async () => {
  fixture?.stopAll();
  await rm(dir, { recursive: true, force: true });
});

describe("ConnectionService.List: the daemon sessions of this replica", () => {
  it("lists a connected metal-core and metal-bmc, moves their heartbeats, and drops each when its stream ends", async () => {
    expect(await list()).toEqual([]);
    const core = new MetalCore({ url: server.url, token: fixture.infraToken, partition: "p1", rack: "r1", os: new SimSwitch({ id: "leaf01", root: join(dir, "leaf01") }), timing: { heartbeatMs: 100 } });
    const beforeStart = Date.now();
    core.start();
    const bmc = startBmcAgent();
    try {
      const both = await eventually("both sessions listed", async () => {
        const cs = await list();
        return find(cs, DaemonKind.SWITCH, "leaf01") && find(cs, DaemonKind.BMC, "bmc-a") ? cs : undefined;
      });
      const sw = find(both, DaemonKind.SWITCH, "leaf01")!;
      const ag = find(both, DaemonKind.BMC, "bmc-a")!;
      for (const c of [sw, ag]) {
        expect(c.partition).toBe("p1");
        expect(c.replica).toMatch(/-\d+-[0-9a-f]{6}$/);
        // Connected after the daemons started and by the time they were listed.
        expect(timestampDate(c.connectedAt!).getTime()).toBeGreaterThanOrEqual(beforeStart);
        expect(timestampDate(c.connectedAt!).getTime()).toBeLessThanOrEqual(Date.now());
      }
      // Both daemons heartbeat every 100 ms: the listed heartbeat moves, the connection time does not.
      for (const [kind, id, before] of [
        [DaemonKind.SWITCH, "leaf01", sw],
        [DaemonKind.BMC, "bmc-a", ag],
      ] as const) {
        const later = await eventually(`${id}'s heartbeat to move`, async () => {
          const c = find(await list(), kind, id);
          return c && timestampDate(c.lastHeartbeat!) > timestampDate(before.lastHeartbeat!) ? c : undefined;
        });
        expect(timestampDate(later.connectedAt!)).toEqual(timestampDate(before.connectedAt!));
        expect(timestampDate(later.lastHeartbeat!) >= timestampDate(later.connectedAt!)).toBe(true);
      }

      // Filters: every given one must match; UNSPECIFIED means any kind.
      expect((await list({ kind: DaemonKind.BMC })).map((c) => c.id)).toEqual(["bmc-a"]);
      expect((await list({ kind: DaemonKind.SWITCH, partition: "p1" })).map((c) => c.id)).toEqual(["leaf01"]);
      expect((await list({ kind: DaemonKind.UNSPECIFIED })).map((c) => c.kind)).toEqual([DaemonKind.BMC, DaemonKind.SWITCH]);
      expect(await list({ partition: "p2" })).toEqual([]);
      await expectCode(list({ partition: "Not An Id!" }), Code.InvalidArgument, "partition");
      await expectCode(list({ kind: 7 as DaemonKind }), Code.InvalidArgument, "kind");

      // Operators only: the partition's own agents may not look.
      await expectCode(list({}, fixture.infraToken), Code.PermissionDenied);

      await core.stop();
      await eventually("metal-core's session to disappear", async () => !find(await list(), DaemonKind.SWITCH, "leaf01"));
      expect(find(await list(), DaemonKind.BMC, "bmc-a")).toBeDefined();
      await bmc.stop();
      await eventually("metal-bmc's session to disappear", async () => (await list()).length === 0);
    } finally {
      await core.stop();
      await bmc.stop();
    }
  });
});
