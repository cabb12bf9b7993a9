import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { SwitchService as AdminSwitchService, SwitchPortState } from "../../gen/metal/admin/v1/switch_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import {
  SwitchPortAdminState,
  SwitchPortMode,
  SwitchService,
  type SwitchServiceSessionRequest,
  type SwitchServiceSessionRequestSchema,
  type SwitchServiceSessionResponse,
} from "../../gen/metal/infra/v1/switch_pb.js";
import { eventually } from "../helpers/eventually.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

type Req = MessageInitShape<typeof SwitchServiceSessionRequestSchema>;

let server: TestServer;
let infra: string;

/** A hand-driven session: the test decides what metal-core says and when. */
function open(token = infra) {
  const queue: Req[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  async function* requests(): AsyncGenerator<Req> {
    for (;;) {
      if (queue.length > 0) {
        yield queue.shift()!;
        continue;
      }
      if (closed) return;
      await new Promise<void>((r) => (wake = r));
    }
  }
  const abort = new AbortController();
  const received: SwitchServiceSessionResponse[] = [];
  let ended = false;
  const done = (async () => {
    try {
      for await (const m of server.grpcClient(SwitchService, token).session(requests() as AsyncIterable<SwitchServiceSessionRequest>, { signal: abort.signal })) {
        received.push(m);
      }
      return undefined;
    } catch (err) {
      return ConnectError.from(err);
    } finally {
      ended = true;
    }
  })();
  return {
    send(r: Req) {
      queue.push(r);
      wake?.();
    },
    close() {
      closed = true;
      wake?.();
    },
    abort: () => abort.abort(),
    received,
    done,
    /** Whether the server has ended the session. */
    ended: () => ended,
    count: (kind: SwitchServiceSessionResponse["message"]["case"]) => received.filter((m) => m.message.case === kind).length,
    next: (pred: (m: SwitchServiceSessionResponse) => boolean): Promise<SwitchServiceSessionResponse> => eventually("a matching message", () => received.find(pred)),
  };
}

const hello = (switchId: string, heartbeatMs = 100, partition = "p1"): Req => ({ partition, message: { case: "hello", value: { switchId, heartbeatInterval: durationFromMs(heartbeatMs) } } });
const config = (m: SwitchServiceSessionResponse) => (m.message.case === "config" ? m.message.value : undefined);

beforeAll(async () => {
  server = await startTestServer();
  await server.client(AdminPartitions, server.adminToken).create({ id: "p1" });
  await server.client(AdminPartitions, server.adminToken).create({ id: "p2" });
  infra = (await server.client(AdminTokens, server.adminToken).create({ subject: "p1", roles: { infraPartition: "p1" } })).secret;
  await server.client(SwitchService, infra).register({ partition: "p1", id: "leaf01", rack: "r1", nics: [{ name: "swp1" }, { name: "swp2" }] });
  // The slow neighbour: its sessions ask for the longest heartbeat the server allows (60 s).
  await server.client(SwitchService, infra).register({ partition: "p1", id: "leaf02", rack: "r1", nics: [{ name: "swp1" }] });
});

const SLOW_HEARTBEAT_MS = 60_000;

describe("SwitchService.Session", () => {
  it("sends the full config with the switch's generation at once, then heartbeats at the pace metal-core asked for", async () => {
    const slow = open();
    slow.send(hello("leaf02", SLOW_HEARTBEAT_MS));
    await slow.next((m) => m.message.case === "config");
    const s = open();
    s.send(hello("leaf01"));
    const first = config(await s.next((m) => m.message.case === "config"))!;
    expect(first.switchId).toBe("leaf01");
    expect(first.ports.map((p) => [p.name, p.mode, p.adminState])).toEqual([
      ["swp1", SwitchPortMode.PXE, SwitchPortAdminState.UP],
      ["swp2", SwitchPortMode.PXE, SwitchPortAdminState.UP],
    ]);
    const keepalive = setInterval(() => s.send({ message: { case: "heartbeat", value: {} } }), 50);
    // Three heartbeats at the 100 ms asked for, while the session that asked for 60 s got none.
    await eventually("three heartbeats", () => s.count("heartbeat") >= 3);
    expect(slow.count("heartbeat")).toBe(0);
    slow.close();
    await slow.done;
    // A sync report is stored with the generation it is about, and does not cause a resend.
    s.send({ message: { case: "sync", value: { generation: first.generation, duration: durationFromMs(12), error: "", ports: [{ name: "swp1", adminState: SwitchPortAdminState.UP }] } } });
    const admin = server.client(AdminSwitchService, server.adminToken);
    const sw = await eventually("the sync report to be stored", async () => {
      const stored = (await admin.get({ id: "leaf01" })).switch;
      return stored?.lastSync && stored;
    });
    expect(sw.lastSync?.duration?.nanos).toBe(12_000_000);
    expect(sw.nics.find((n) => n.name === "swp1")?.actualState).toBe(SwitchPortState.UP);
    // Two more heartbeats after the report was stored: the session went on past it, and sent no second config.
    const beats = s.count("heartbeat");
    await eventually("two heartbeats after the stored report", () => s.count("heartbeat") >= beats + 2);
    expect(s.count("config")).toBe(1);
    clearInterval(keepalive);
    s.close();
    expect(await s.done).toBeUndefined();
  });

  it("resends when the generation grows (re-registration with another port)", async () => {
    const s = open();
    s.send(hello("leaf01"));
    const first = config(await s.next((m) => m.message.case === "config"))!;
    await server.client(SwitchService, infra).register({ partition: "p1", id: "leaf01", rack: "r1", nics: [{ name: "swp1" }, { name: "swp2" }, { name: "swp3" }] });
    const second = config(await s.next((m) => (config(m)?.generation ?? 0n) > first.generation))!;
    expect(second.ports.map((p) => p.name)).toEqual(["swp1", "swp2", "swp3"]);
    s.close();
    await s.done;
  });

  it("ends a session that falls silent for three heartbeat intervals", async () => {
    // Both fall silent; only the one that asked for 100 ms heartbeats has missed three of them.
    const slow = open();
    slow.send(hello("leaf02", SLOW_HEARTBEAT_MS));
    await slow.next((m) => m.message.case === "config");
    const s = open();
    s.send(hello("leaf01", 100));
    await s.next((m) => m.message.case === "config");
    const err = await s.done;
    expect(err?.code).toBe(Code.DeadlineExceeded);
    expect(slow.ended()).toBe(false);
    slow.close();
    expect(await slow.done).toBeUndefined();
  });

  it("ends the older of two sessions of the same switch", async () => {
    const a = open();
    a.send(hello("leaf01", 5_000));
    await a.next((m) => m.message.case === "config");
    const b = open();
    b.send(hello("leaf01", 5_000));
    await b.next((m) => m.message.case === "config");
    expect((await a.done)?.code).toBe(Code.Unavailable);
    b.close();
    await b.done;
  });

  it("refuses sessions that do not start with a hello, name an unknown switch, or come from another partition", async () => {
    const noHello = open();
    noHello.send({ partition: "p1", message: { case: "heartbeat", value: {} } });
    expect((await noHello.done)?.code).toBe(Code.InvalidArgument);
    const unknown = open();
    unknown.send(hello("leaf99"));
    expect((await unknown.done)?.code).toBe(Code.NotFound);
    const foreign = open();
    foreign.send(hello("leaf01", 100, "p2"));
    expect((await foreign.done)?.code).toBe(Code.PermissionDenied);
    const p2 = (await server.client(AdminTokens, server.adminToken).create({ subject: "p2", roles: { infraPartition: "p2" } })).secret;
    const wrongPartition = open(p2);
    wrongPartition.send(hello("leaf01", 100, "p2"));
    expect((await wrongPartition.done)?.code).toBe(Code.FailedPrecondition);
  });
});
