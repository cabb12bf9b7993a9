import { randomUUID } from "node:crypto";
import { fromJsonString } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { sql } from "drizzle-orm";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { type MachineFeedMessage, MachineFeedMessageSchema, type SwitchFeedMessage, SwitchFeedMessageSchema } from "../../gen/metal/feed/v1/feed_pb.js";
import { changesTopic, createInProcessBus } from "../../server/bus/fanout.js";
import { createMqttBus, type MqttBus } from "../../server/bus/mqtt-bus.js";
import { FEED_MESSAGE_MAX_BYTES, machineFeedJson } from "../../server/convert/feed.js";
import type { Database } from "../../server/db/database.js";
import type { DbHandle } from "../../server/db/handle.js";
import { type MetalSchema, openMetalDatabase } from "../../server/db/metal-database.js";
import { type EventFeed, startEventFeed } from "../../server/feed/publisher.js";
import { FEED_CURSOR } from "../../server/feed/round.js";
import type { FeedSink } from "../../server/feed/sink.js";
import { feedTopic, level } from "../../server/feed/topics.js";
import { createLogger } from "../../server/logger.js";
import { changeLogRepository } from "../../server/repositories/change-log-repository.js";
import { switchSessionRepository } from "../../server/repositories/switch-repository.js";
import { eventually } from "../helpers/eventually.js";
import { insertWaitingMachines, type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

const BROKER = process.env.TEST_MQTT_URL ?? "mqtt://127.0.0.1:1883";

interface Received {
  topic: string;
  payload: string;
}

/** A real MQTT subscriber of everything below `<prefix>/v1/events/`, recording what arrives in order. */
async function subscribe(prefix: string): Promise<{ received: Received[]; close(): Promise<void> }> {
  const client = await mqtt.connectAsync(BROKER, { clean: true, reconnectPeriod: 0 });
  const received: Received[] = [];
  client.on("message", (topic, payload) => received.push({ topic: topic.slice(`${prefix}/v1/events/`.length), payload: payload.toString("utf8") }));
  await client.subscribeAsync(`${prefix}/v1/events/#`, { qos: 1 });
  return { received, close: () => client.endAsync() };
}

/**
 * The feed's sink as the MQTT bus implements it (QoS 1 under `<prefix>/v1/events/`,
 * resolved on PUBACK), with a switch for an outage: `failAfter` more publishes
 * go through, every later one fails until it is cleared.
 */
async function mqttSink(prefix: string, together: { inFlight: number; maxInFlight: number } = { inFlight: 0, maxInFlight: 0 }) {
  const client = await mqtt.connectAsync(BROKER, { clean: true });
  const sink = {
    published: 0,
    failures: 0,
    failAfter: undefined as number | undefined,
    async publishFeed(topic: string, payload: string): Promise<void> {
      if (sink.failAfter !== undefined) {
        if (sink.failAfter === 0) {
          sink.failures++;
          throw new Error("broker unreachable");
        }
        sink.failAfter--;
      }
      together.inFlight++;
      together.maxInFlight = Math.max(together.maxInFlight, together.inFlight);
      try {
        await client.publishAsync(`${prefix}/v1/events/${topic}`, payload, { qos: 1 });
        sink.published++;
      } finally {
        together.inFlight--;
      }
    },
    close: () => client.endAsync(),
  } satisfies FeedSink & Record<string, unknown>;
  return sink;
}

const machineMessage = (r: Received): MachineFeedMessage => fromJsonString(MachineFeedMessageSchema, r.payload);
const switchMessage = (r: Received): SwitchFeedMessage => fromJsonString(SwitchFeedMessageSchema, r.payload);
const machineMessages = (received: readonly Received[], id: string) => received.filter((r) => r.topic.startsWith("machines/") && r.topic.split("/")[2] === id).map(machineMessage);
/** A consumer's rule (docs/event-feed.md): the feed's position is (tx, revision); anything not after the last one processed is a redelivery. */
const position = (m: { tx: bigint; revision: bigint }) => [m.tx, m.revision] as const;
const after = (a: readonly [bigint, bigint], b: readonly [bigint, bigint]) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
function deduplicated<T extends { tx: bigint; revision: bigint }>(messages: readonly T[]): T[] {
  const out: T[] = [];
  for (const m of messages) if (out.length === 0 || after(position(m), position(out[out.length - 1]!))) out.push(m);
  return out;
}
const anyMessage = (r: Received) => (r.topic.startsWith("switches/") ? switchMessage(r) : machineMessage(r));

async function feedCursor(db: DbHandle): Promise<number | undefined> {
  return changeLogRepository.cursor(db, FEED_CURSOR);
}

/** The change log's revisions from (tx, revision) on (`inclusive`) or after it, in the feed's order. */
async function logRevisions(db: DbHandle, from: { tx: bigint; revision: bigint }, inclusive = false): Promise<bigint[]> {
  const pos = sql`(${from.tx.toString()}::bigint, ${from.revision.toString()}::bigint)`;
  const where = inclusive ? sql`(tx, revision) >= ${pos}` : sql`(tx, revision) > ${pos}`;
  const res = (await db.execute(sql`select revision::text from change_log where ${where} order by tx, revision`)) as unknown as { rows: { revision: string }[] };
  return res.rows.map((r) => BigInt(r.revision));
}

describe("feed topics and payloads", () => {
  it("are versioned by the sink's prefix and never turn an id into a wildcard or another level", () => {
    expect(feedTopic({ entity: "machine", entityId: "m1", partitionId: null, kind: "created" })).toBe("machines/none/m1/created");
    expect(feedTopic({ entity: "switch", entityId: "leaf01", partitionId: "p1", kind: "synced" })).toBe("switches/p1/leaf01/synced");
    expect(feedTopic({ entity: "machine", entityId: "a/b+#", partitionId: "p/+", kind: "event" })).toBe("machines/p__/a_b__/event");
    expect(level("x\u0000y")).toBe("x_y");
  });

  it("keep a payload under the bound a broker takes, however long the events' messages are", () => {
    const events = Array.from({ length: 100 }, (_, i) => ({ type: "Waiting", message: "x".repeat(4096), time: new Date(Date.UTC(2026, 0, 1, 0, 0, 100 - i)).toISOString() }));
    const change = { revision: 7, tx: 9, entity: "machine", entityId: "m1", partitionId: "p1", project: null, previousProject: null, kind: "event", payload: { events }, at: new Date() } as const;
    const json = machineFeedJson(change, undefined);
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(FEED_MESSAGE_MAX_BYTES);
    const message = fromJsonString(MachineFeedMessageSchema, json);
    expect(message.events).toHaveLength(100);
    expect(message.events[0]!.message).toBe(`${"x".repeat(256)}…`);
    // Oldest first.
    expect(timestampDate(message.events[0]!.time!) < timestampDate(message.events[99]!.time!)).toBe(true);
    const short = { ...change, payload: { events: events.slice(0, 2) } };
    expect(fromJsonString(MachineFeedMessageSchema, machineFeedJson(short, undefined)).events[0]!.message).toHaveLength(4096);
  });
});

describe("the event feed of a server", () => {
  const prefix = `feed-test-${randomUUID().slice(0, 8)}`;
  let subscriber: Awaited<ReturnType<typeof subscribe>>;
  let sink: Awaited<ReturnType<typeof mqttSink>>;
  let server: TestServer;
  let fixture: PartitionFixture;

  beforeAll(async () => {
    subscriber = await subscribe(prefix);
    sink = await mqttSink(prefix);
    server = await startTestServer({ feedSink: sink });
    // The feed's first round sets its cursor at the then settled position; what happens afterwards is published.
    await eventually("the feed to set its cursor", () => feedCursor(server.app.db));
    fixture = await setUpPartition(server);
  });

  afterAll(async () => {
    fixture?.stopAll();
    await subscriber?.close();
    await sink?.close();
  });

  let machineId: string;

  it("publishes a machine's provisioning events in the order they happened, on its topic", async () => {
    const m = await fixture.bootMachine("r1");
    machineId = m.id;
    const log = (await server.client(AdminMachineService, server.adminToken).get({ id: m.id })).machine!.events!.log;
    const expected = [...log].reverse().map((e) => ({ type: e.type, message: e.message, time: timestampDate(e.time!).toISOString() }));
    expect(expected.length).toBeGreaterThanOrEqual(3);
    const published = await eventually("every event of the machine on the feed", () => {
      const events = machineMessages(subscriber.received, m.id)
        .filter((msg) => msg.kind === "event")
        .flatMap((msg) => msg.events.map((e) => ({ type: e.type, message: e.message, time: timestampDate(e.time!).toISOString() })));
      return events.length >= expected.length && events;
    });
    expect(published).toEqual(expected);
    for (const r of subscriber.received.filter((r) => r.topic.startsWith("machines/"))) {
      const msg = machineMessage(r);
      expect(r.topic).toBe(`machines/${msg.partition || "none"}/${msg.machineId}/${msg.kind}`);
    }
  });

  it("publishes an allocation and its free in order, with the operator's view of the machine and no secrets", async () => {
    const tenant = server.client(MachineService, server.adminToken);
    const { machine } = await tenant.create({ project: "pa", partition: "p1", size: "s1", image: "debian-12", name: "feed-1", networks: [fixture.primary.pa], userData: "#cloud-config password: hunter2" });
    expect(machine!.id).toBe(machineId);
    const allocated = await eventually("the allocation on the feed", () => machineMessages(subscriber.received, machineId).find((m) => m.kind === "allocated"));
    expect(allocated).toMatchObject({ machineId, partition: "p1", project: "pa", previousProject: "" });
    expect(allocated.machine?.allocation).toMatchObject({ project: "pa", name: "feed-1", uuid: machine!.allocation!.uuid, userData: "" });
    expect(subscriber.received.find((r) => r.payload.includes("hunter2"))).toBeUndefined();
    expect(allocated.machine?.events?.log).toEqual([]);

    await tenant.delete({ id: machineId, project: "pa" });
    const freed = await eventually("the free on the feed", () => machineMessages(subscriber.received, machineId).find((m) => m.kind === "freed"));
    expect(freed).toMatchObject({ machineId, partition: "p1", project: "", previousProject: "pa" });
    const kinds = machineMessages(subscriber.received, machineId).map((m) => m.kind);
    expect(kinds.filter((k) => k === "allocated" || k === "freed")).toEqual(["allocated", "freed"]);
    expect(kinds.indexOf("allocated")).toBeLessThan(kinds.indexOf("freed"));
  });

  it("publishes switch sync reports with the sync they reported", async () => {
    const time = new Date();
    await switchSessionRepository.recordSync(server.app.db, "leaf01", { sync: { time: time.toISOString(), durationMs: 12, error: "" }, failed: false, ports: new Map() });
    const ok = await eventually("the sync on the feed", () => subscriber.received.filter((r) => r.topic === "switches/p1/leaf01/synced").map(switchMessage)[0]);
    expect(ok).toMatchObject({ switchId: "leaf01", partition: "p1", rack: "r1", kind: "synced" });
    expect(timestampDate(ok.lastSync!.time!).toISOString()).toBe(time.toISOString());
    expect(ok.lastSync!.duration!.nanos).toBe(12_000_000);
    await switchSessionRepository.recordSync(server.app.db, "leaf01", { sync: { time: new Date().toISOString(), durationMs: 3, error: "vtysh failed" }, failed: true, ports: new Map() });
    const failed = await eventually("the failed sync on the feed", () => subscriber.received.filter((r) => r.topic === "switches/p1/leaf01/synced").map(switchMessage)[1]);
    expect(failed.lastSyncError?.error).toBe("vtysh failed");
  });

  it("publishes every change once, in the change log's order", async () => {
    const messages = subscriber.received.map(anyMessage);
    expect(deduplicated(messages)).toEqual(messages);
    const expected = await logRevisions(server.app.db, messages[0]!, true);
    // Everything the log holds from the first message on, up to the last one published.
    expect(messages.map((m) => m.revision)).toEqual(expected.slice(0, messages.length));
  });
});

describe("the event feed through the MQTT bus, as configured", () => {
  const prefix = `feed-test-${randomUUID().slice(0, 8)}`;
  let subscriber: Awaited<ReturnType<typeof subscribe>>;
  let bus: MqttBus;
  let server: TestServer;

  beforeAll(async () => {
    subscriber = await subscribe(prefix);
    bus = await createMqttBus({ url: BROKER, prefix, replicaId: `feed-test-${process.pid}` });
    server = await startTestServer({ bus, env: { MQTT_URL: BROKER, METAL_MQTT_TOPIC_PREFIX: prefix, METAL_EVENT_FEED: "true" } });
    await eventually("the feed to set its cursor", () => feedCursor(server.app.db));
  });

  afterAll(async () => {
    await bus?.close();
    await subscriber?.close();
  });

  it("publishes with METAL_EVENT_FEED on the bus's connection, under the configured prefix", async () => {
    await setUpPartition(server);
    const created = await eventually("a switch's registration on the feed", () => subscriber.received.find((r) => r.topic === "switches/p1/leaf01/created"));
    expect(switchMessage(created)).toMatchObject({ kind: "created", switchId: "leaf01", partition: "p1", rack: "r1" });
  });
});

describe("the feed's cursor and lock", () => {
  const prefix = `feed-test-${randomUUID().slice(0, 8)}`;
  const bus = createInProcessBus();
  const log = createLogger("silent", { pretty: false });
  let subscriber: Awaited<ReturnType<typeof subscribe>>;
  const sinks: Awaited<ReturnType<typeof mqttSink>>[] = [];
  const feeds: EventFeed[] = [];
  let server: TestServer;
  let db: DbHandle;
  let machines: string[];

  const start = (sink: FeedSink) => {
    const feed = startEventFeed({ db, bus, sink, log, intervalMs: 50 });
    feeds.push(feed);
    return feed;
  };
  const newSink = async () => {
    const s = await mqttSink(prefix);
    sinks.push(s);
    return s;
  };
  /** One change per transaction, each waking the feeds. */
  async function change(count: number, tag: string): Promise<void> {
    for (let i = 0; i < count; i++) {
      await db.execute(sql`update machines set state_reason = ${`${tag}-${i}`} where id = ${machines[i % machines.length]!}`);
      bus.publish(changesTopic);
    }
  }
  const received = () => subscriber.received.filter((r) => r.topic.startsWith("machines/")).map(machineMessage);

  beforeAll(async () => {
    server = await startTestServer();
    db = server.app.db;
    await setUpPartition(server);
    machines = await insertWaitingMachines(server, 3);
    subscriber = await subscribe(prefix);
  });

  afterAll(async () => {
    await Promise.all(feeds.map((f) => f.stop()));
    await Promise.all(sinks.map((s) => s.close()));
    await subscriber?.close();
  });

  it("starts at the current position, not at the beginning of the log", async () => {
    const history = ((await db.execute(sql`select count(*)::int as n from change_log`)) as unknown as { rows: { n: number }[] }).rows[0]!.n;
    expect(history).toBeGreaterThan(5);
    // The history must be settled (no older transaction of the cluster still running), or it would count as news.
    const newest = Number(((await db.execute(sql`select max(tx)::text as tx from change_log`)) as unknown as { rows: { tx: string }[] }).rows[0]!.tx);
    await eventually("the history to settle", async () => (await changeLogRepository.settledTx(db)) >= newest);
    const feed = start(await newSink());
    await eventually("the cursor", () => feedCursor(db));
    await change(1, "first");
    // History would come first: the first message is the change made after the start.
    await eventually("the first change", () => received().length > 0);
    expect(received()[0]).toMatchObject({ kind: "updated", machineId: machines[0] });
    expect(received()[0]!.machine?.stateReason).toBe("first-0");
    await feed.stop();
    expect(received()).toHaveLength(1);
  });

  it("loses and reorders nothing through an outage and a restart: the batch is sent again from the cursor", async () => {
    const sink = await newSink();
    const before = received().length;
    const last = received().at(-1)!;
    const cursor = await feedCursor(db);
    // Six changes while no feed runs, settled before one starts, so that its first round reads them in one batch.
    await change(6, "outage");
    const expected = await logRevisions(db, last);
    expect(expected).toHaveLength(6);
    await eventually("the six to settle", async () => (await changeLogRepository.readAfter(db, cursor!, 100)).length === 6);
    // Two messages get through, then the broker is gone.
    sink.failAfter = 2;
    let feed = start(sink);
    await eventually("publishing to fail", () => sink.failures > 0);
    await eventually("the two that got through", () => received().length === before + 2);
    await feed.stop();
    expect(await feedCursor(db)).toBe(cursor);
    // A new publisher, still without a broker: the cursor does not move.
    const failuresBefore = sink.failures;
    feed = start(sink);
    await eventually("the new publisher to fail too", () => sink.failures > failuresBefore);
    expect(await feedCursor(db)).toBe(cursor);
    sink.failAfter = undefined;
    await eventually("all six after the broker came back", () => deduplicated(received().slice(before)).length === 6);
    await eventually("the cursor to move past them", async () => (await feedCursor(db))! > cursor!);
    const delivered = received()
      .slice(before)
      .map((m) => m.revision);
    // At least once: the two that got through before the outage were not in the cursor, so they came again with their batch.
    expect(delivered).toEqual([...expected.slice(0, 2), ...expected]);
    expect(deduplicated(received().slice(before)).map((m) => m.revision)).toEqual(expected);
    await feed.stop();
  });

  it("publishes from one replica at a time when two run on one database: nothing twice, nothing out of order", async () => {
    const together = { inFlight: 0, maxInFlight: 0 };
    const a = await mqttSink(prefix, together);
    const b = await mqttSink(prefix, together);
    sinks.push(a, b);
    const before = received().length;
    const last = received().at(-1)!;
    start(a);
    start(b);
    await change(30, "pair");
    const expected = await logRevisions(db, last);
    expect(expected).toHaveLength(30);
    await eventually("every change of the pair", () => received().length >= before + 30);
    expect(
      received()
        .slice(before)
        .map((m) => m.revision),
    ).toEqual(expected);
    // The subscriber can have a message before its publisher has the broker's acknowledgement (and counts it).
    await eventually("both publishers' acknowledgements", () => a.published + b.published >= 30);
    expect(a.published + b.published).toBe(30);
    // Each round publishes one message at a time under the lock: two publishers never overlapped.
    expect(together.maxInFlight).toBe(1);
  });
});

describe("the event feed on the embedded database", () => {
  const prefix = `feed-test-${randomUUID().slice(0, 8)}`;
  let database: Database<MetalSchema>;
  let subscriber: Awaited<ReturnType<typeof subscribe>>;
  let sink: Awaited<ReturnType<typeof mqttSink>>;
  let feed: EventFeed;

  beforeAll(async () => {
    database = await openMetalDatabase({ url: undefined, dataDir: undefined });
    subscriber = await subscribe(prefix);
    sink = await mqttSink(prefix);
  }, scaled(120_000));

  afterAll(async () => {
    await feed?.stop();
    await database?.close();
    await sink?.close();
    await subscriber?.close();
  });

  it("publishes without the lock's transaction (one connection, one replica), a machine without partition under 'none'", async () => {
    const bus = createInProcessBus();
    feed = startEventFeed({ db: database.db, bus, sink, log: createLogger("silent", { pretty: false }), intervalMs: 50, singleReplica: true });
    await eventually("the cursor", () => feedCursor(database.db));
    const id = randomUUID();
    await database.db.execute(sql`insert into machines (id) values (${id})`);
    bus.publish(changesTopic);
    const created = await eventually("the new machine on the feed", () => subscriber.received.find((r) => r.topic === `machines/none/${id}/created`));
    expect(machineMessage(created)).toMatchObject({ kind: "created", machineId: id, partition: "" });
    expect(machineMessage(created).machine?.id).toBe(id);
  });
});
