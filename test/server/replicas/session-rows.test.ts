import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { AsyncQueue } from "../../../client/async-queue.js";
import { ConnectionService, type DaemonConnection, DaemonKind } from "../../../gen/metal/admin/v1/connection_pb.js";
import { PartitionService as AdminPartitions } from "../../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../../gen/metal/admin/v1/token_pb.js";
import { BMCService, type BMCServiceSessionRequestSchema } from "../../../gen/metal/infra/v1/bmc_pb.js";
import { SwitchService, type SwitchServiceSessionRequestSchema } from "../../../gen/metal/infra/v1/switch_pb.js";
import { daemonSessions } from "../../../server/db/schema/index.js";
import { eventually } from "../../helpers/eventually.js";
import { type SharedDbReplica, type SharedDbReplicas, startSharedDbReplicas } from "../../helpers/shared-db-replicas.js";

/**
 * Two control planes on one PostgreSQL database, as behind a load balancer.
 * Their own heartbeat timers are an hour apart, so every heartbeat here is
 * one the test runs (`app.replica.beat()`), and a replica "stops beating"
 * simply because the test does not run its beat.
 */
let set: SharedDbReplicas;
let a: SharedDbReplica;
let b: SharedDbReplica;
let infraToken: string;

interface Daemon {
  /** Sends a heartbeat on the stream. */
  beat(): void;
  /** Closes the daemon's side and waits until the stream is over. */
  close(): Promise<void>;
  /** Settles when the server ended the stream: the error it ended with, undefined for a clean end. */
  readonly ended: Promise<ConnectError | undefined>;
}

function daemon<T>(open: (out: AsyncQueue<T>, signal: AbortSignal) => AsyncIterable<unknown>, hello: T, heartbeat: T): Daemon {
  const out = new AsyncQueue<T>();
  out.push(hello);
  const abort = new AbortController();
  const ended = (async () => {
    try {
      for await (const _ of open(out, abort.signal));
      return undefined;
    } catch (err) {
      return ConnectError.from(err);
    }
  })();
  return {
    beat: () => void out.push(heartbeat),
    async close() {
      out.close();
      await ended;
    },
    ended,
  };
}

type BmcRequest = MessageInitShape<typeof BMCServiceSessionRequestSchema>;
type SwitchRequest = MessageInitShape<typeof SwitchServiceSessionRequestSchema>;

const bmcDaemon = (on: SharedDbReplica, agent: string) =>
  daemon<BmcRequest>(
    (out, signal) => on.grpcClient(BMCService, infraToken).session(out, { signal }),
    { partition: "p1", kind: { case: "hello", value: { agent, version: "test" } } },
    { partition: "p1", kind: { case: "heartbeat", value: {} } },
  );

const switchDaemon = (on: SharedDbReplica, id: string) =>
  daemon<SwitchRequest>(
    (out, signal) => on.grpcClient(SwitchService, infraToken).session(out, { signal }),
    // A long interval: the server does not end the session for silence during the test.
    { partition: "p1", message: { case: "hello", value: { switchId: id, heartbeatInterval: { seconds: 60n } } } },
    { partition: "p1", message: { case: "heartbeat", value: {} } },
  );

const list = (on: SharedDbReplica, req: { kind?: DaemonKind; partition?: string } = {}) =>
  on
    .client(ConnectionService, on.adminToken)
    .list(req)
    .then((r) => r.connections);
const brief = (cs: DaemonConnection[]) => cs.map((c) => `${DaemonKind[c.kind]}/${c.partition}/${c.id}@${c.replica}`);

/** The rows as stored, for what List does not show. */
const rows = () =>
  set.db
    .select({ kind: daemonSessions.kind, daemon_id: daemonSessions.daemonId, replica_id: daemonSessions.replicaId, connected_at: daemonSessions.connectedAt, last_seen: daemonSessions.lastSeen })
    .from(daemonSessions)
    .orderBy(daemonSessions.kind, daemonSessions.daemonId);

async function replicaIds(): Promise<string[]> {
  const res = (await set.db.execute(sql`select id from replicas order by id`)) as unknown as { rows: { id: string }[] };
  return res.rows.map((r) => r.id);
}

beforeAll(async () => {
  set = await startSharedDbReplicas(["replica-a", "replica-b"], { env: { METAL_REPLICA_HEARTBEAT: "1h", METAL_REPLICA_TIMEOUT: "2h" } });
  [a, b] = set.replicas as [SharedDbReplica, SharedDbReplica];
  await a.client(AdminPartitions, a.adminToken).create({ id: "p1" });
  infraToken = (await a.client(AdminTokens, a.adminToken).create({ subject: "p1-agents", roles: { infraPartition: "p1" } })).secret;
  for (const id of ["leaf01", "leaf02"]) await a.client(SwitchService, infraToken).register({ partition: "p1", id, rack: "r1", nics: [{ name: "swp1" }] });
});

describe("daemon session rows across two replicas", () => {
  it("List on either replica shows the sessions of both, each with the replica that holds it and its address; a closed stream's row goes", async () => {
    const sw = switchDaemon(a, "leaf01");
    const bmc = bmcDaemon(b, "bmc-1");
    try {
      const both = ["BMC/p1/bmc-1@replica-b", "SWITCH/p1/leaf01@replica-a"];
      await eventually("both sessions listed on A", async () => JSON.stringify(brief(await list(a))) === JSON.stringify(both));
      const onB = await list(b);
      expect(brief(onB)).toEqual(both);
      expect(onB.find((c) => c.replica === "replica-a")!.replicaAddress).toBe(new URL(a.url).host);
      expect(onB.find((c) => c.replica === "replica-b")!.replicaAddress).toBe(new URL(b.url).host);
      // The filters apply to every replica's rows.
      expect(brief(await list(a, { kind: DaemonKind.BMC }))).toEqual(["BMC/p1/bmc-1@replica-b"]);
      expect(brief(await list(b, { kind: DaemonKind.SWITCH, partition: "p1" }))).toEqual(["SWITCH/p1/leaf01@replica-a"]);
      expect(await list(b, { partition: "p2" })).toEqual([]);

      await sw.close();
      await eventually("the switch's row gone, seen from B", async () => JSON.stringify(brief(await list(b))) === JSON.stringify(["BMC/p1/bmc-1@replica-b"]));
      await bmc.close();
      await eventually("no rows left", async () => (await rows()).length === 0);
      expect(await list(a)).toEqual([]);
    } finally {
      await Promise.all([sw.close(), bmc.close()]);
    }
  });

  it("a daemon that reconnects to the other replica takes its row over; the old replica ends the old stream at its next heartbeat and its late close leaves the row", async () => {
    const old = bmcDaemon(a, "bmc-2");
    let fresh: Daemon | undefined;
    try {
      await eventually("the row on A", async () => (await rows()).some((r) => r.daemon_id === "bmc-2" && r.replica_id === "replica-a"));
      // The daemon's old stream on A is still open when it reaches B (a load balancer moved it).
      fresh = bmcDaemon(b, "bmc-2");
      await eventually("the row taken over by B", async () => (await rows()).some((r) => r.daemon_id === "bmc-2" && r.replica_id === "replica-b"));
      const [taken] = await rows();

      // A's heartbeat finds the row is another connection's now and ends the old stream.
      await a.app.replica.beat();
      const why = await old.ended;
      expect(why?.code).toBe(Code.Aborted);
      expect(why?.rawMessage).toMatch(/replaced/);
      // The old stream's end on A (its "late close") did not delete B's row, nor did A's heartbeat take it back.
      await a.app.replica.beat();
      expect(await rows()).toEqual([taken]);
      expect(brief(await list(a))).toEqual(["BMC/p1/bmc-2@replica-b"]);

      // B's stream still runs and still owns the row when it beats.
      await b.app.replica.beat();
      expect((await rows()).map((r) => r.replica_id)).toEqual(["replica-b"]);
    } finally {
      await old.close();
      await fresh?.close();
    }
    await eventually("no rows left", async () => (await rows()).length === 0);
  });

  it("last_seen follows the daemon's messages at each replica heartbeat, not before", async () => {
    const sw = switchDaemon(b, "leaf02");
    try {
      await eventually("the row", async () => (await rows()).length === 1);
      const [first] = await rows();
      expect(first!.last_seen).toEqual(first!.connected_at);
      sw.beat();
      // The message reaches the replica's memory at once (List on B shows it), the table only at B's heartbeat.
      const heard = await eventually("B to hear the heartbeat", async () => {
        const c = (await list(b))[0];
        return c && timestampDate(c.lastHeartbeat!) > first!.connected_at ? timestampDate(c.lastHeartbeat!) : undefined;
      });
      expect((await rows())[0]!.last_seen).toEqual(first!.last_seen);
      // A shows what the table holds: B has not beaten yet.
      expect(timestampDate((await list(a))[0]!.lastHeartbeat!)).toEqual(first!.last_seen);
      await b.app.replica.beat();
      expect((await rows())[0]!.last_seen).toEqual(heard);
      expect(timestampDate((await list(a))[0]!.lastHeartbeat!)).toEqual(heard);
    } finally {
      await sw.close();
    }
    await eventually("no rows left", async () => (await rows()).length === 0);
  });

  it("a replica whose heartbeat stopped is reaped by the other with its sessions' rows, and comes back at its own next heartbeat", async () => {
    const sw = switchDaemon(a, "leaf01");
    const bmc = bmcDaemon(b, "bmc-3");
    try {
      await eventually("both rows", async () => (await rows()).length === 2);
      // A has not beaten for three hours (the timeout is two).
      await set.db.execute(sql`update replicas set heartbeat_at = now() - interval '3 hours' where id = 'replica-a'`);
      await b.app.replica.beat();
      expect(await replicaIds()).toEqual(["replica-b"]);
      expect((await rows()).map((r) => `${r.daemon_id}@${r.replica_id}`)).toEqual(["bmc-3@replica-b"]);
      expect(brief(await list(b))).toEqual(["BMC/p1/bmc-3@replica-b"]);

      // A was only paused: its next heartbeat writes its row and its live sessions' rows again.
      await a.app.replica.beat();
      expect(await replicaIds()).toEqual(["replica-a", "replica-b"]);
      expect(brief(await list(b))).toEqual(["BMC/p1/bmc-3@replica-b", "SWITCH/p1/leaf01@replica-a"]);
    } finally {
      await Promise.all([sw.close(), bmc.close()]);
    }
    await eventually("no rows left", async () => (await rows()).length === 0);
  });

  it("a replica that shuts down takes its row and its sessions' rows with it", async () => {
    const sw = switchDaemon(a, "leaf02");
    const bmc = bmcDaemon(b, "bmc-4");
    try {
      await eventually("both rows", async () => (await rows()).length === 2);
      await a.stop();
      expect(await replicaIds()).toEqual(["replica-b"]);
      expect(brief(await list(b))).toEqual(["BMC/p1/bmc-4@replica-b"]);
    } finally {
      await Promise.all([sw.close(), bmc.close()]);
    }
  });
});
