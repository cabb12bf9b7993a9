import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMqttBus, MAX_WAKE_PAYLOAD_BYTES, type MqttBus, splitBrokerCredentials } from "../../../server/bus/mqtt-bus.js";
import { eventually } from "../../helpers/eventually.js";
import { type PrivateBroker, startPrivateBroker } from "../../helpers/mosquitto.js";
import { scaled } from "../../helpers/timeouts.js";

const execFileAsync = promisify(execFile);

// The real Mosquitto, a private one per file, so that it can be stopped and started again.
let broker: PrivateBroker;
const open: { close(): Promise<void> }[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  broker = await startPrivateBroker();
});
afterAll(async () => {
  await broker.dispose();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

const newPrefix = () => `t${randomBytes(4).toString("hex")}`;

async function bus(prefix: string, replicaId: string, extra: { firstConnectMs?: number; resyncIntervalMs?: number } = {}): Promise<MqttBus> {
  const b = await createMqttBus({ url: broker.url, prefix, replicaId, reconnectMs: 100, ...extra });
  open.push(b);
  return b;
}

/** A plain MQTT client, as an outsider on the network would use one. */
async function rawClient(): Promise<MqttClient> {
  const c = await connectAsync(broker.url, { reconnectPeriod: 0 });
  clients.push(c);
  return c;
}

/** A TCP relay to the broker whose open connections the test can cut, as a network fault would, while the broker runs on. */
async function cuttableProxy(target: number): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = createConnection({ host: "127.0.0.1", port: target });
    for (const [from, to] of [
      [inbound, outbound],
      [outbound, inbound],
    ] as const) {
      sockets.add(from);
      from.pipe(to);
      from.on("error", () => to.destroy());
      from.on("close", () => {
        sockets.delete(from);
        to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const cut = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    port: (server.address() as { port: number }).port,
    cut,
    close: () =>
      new Promise<void>((resolve) => {
        cut();
        server.close(() => resolve());
      }),
  };
}

function recorder(b: MqttBus, topic: string): (string | undefined)[] {
  const seen: (string | undefined)[] = [];
  b.subscribe(topic, (p) => seen.push(p));
  return seen;
}

describe("MQTT bus between two replicas", () => {
  it("wakes a subscriber on the other replica with the payload, and the publisher's own subscriber exactly once", async () => {
    const prefix = newPrefix();
    const a = await bus(prefix, "A");
    const b = await bus(prefix, "B");
    const onA = recorder(a, "allocation/m1");
    const onB = recorder(b, "allocation/m1");

    a.publish("allocation/m1", "first");
    // In-process delivery is synchronous, as with the in-process bus.
    expect(onA).toEqual(["first"]);
    await eventually("B woken by A", () => onB.length === 1);
    expect(onB).toEqual(["first"]);

    // B answers after it heard A: the broker sent A its own echo of "first" before it saw "second",
    // so by the time "second" arrives on A, an echo that was not ignored would have been counted.
    b.publish("allocation/m1", "second");
    await eventually("A woken by B", () => onA.length >= 2);
    expect(onA).toEqual(["first", "second"]);
    expect(onB).toEqual(["first", "second"]);
  });

  it("carries wake-ups without payload and keeps topics apart", async () => {
    const prefix = newPrefix();
    const a = await bus(prefix, "A");
    const b = await bus(prefix, "B");
    const other = recorder(b, "switch/s2");
    const mine = recorder(b, "switch/s1");
    a.publish("switch/s1");
    await eventually("B woken", () => mine.length === 1);
    expect(mine).toEqual([undefined]);
    expect(other).toEqual([]);
  });

  it("ignores malformed, oversized and foreign-looking messages on the wake-up topics without harm", async () => {
    const prefix = newPrefix();
    const b = await bus(prefix, "B");
    const seen = recorder(b, "t");
    const outsider = await rawClient();
    const wake = `${prefix}/v1/wake/t`;
    for (const junk of [
      "not json",
      "null",
      "[]",
      '"a string"',
      '{"p":"no origin"}',
      '{"o":5,"p":"origin not a string"}',
      '{"o":"X","p":123}',
      `{"o":"X","p":"${"x".repeat(MAX_WAKE_PAYLOAD_BYTES * 3)}"}`,
      Buffer.from([0xff, 0xfe, 0x00, 0x01]),
      '{"o":"B","p":"claims to be B, so it is B\'s own echo"}',
    ]) {
      await outsider.publishAsync(wake, junk);
    }
    // Topics nobody here listens to, including one an EventEmitter would treat specially.
    await outsider.publishAsync(`${prefix}/v1/wake/error`, '{"o":"X","p":"boom"}');
    await outsider.publishAsync(`${prefix}/v1/wake/`, '{"o":"X"}');
    await outsider.publishAsync(wake, '{"o":"X","p":"valid"}');
    // The broker delivers in order: once "valid" is here, everything before it was handled.
    await eventually("the valid message", () => seen.length > 0);
    expect(seen).toEqual(["valid"]);
    expect(b.connected).toBe(true);
  });

  it("does not send a payload over the bound to the other replicas, but still wakes its own", async () => {
    const prefix = newPrefix();
    const a = await bus(prefix, "A");
    const b = await bus(prefix, "B");
    const onA = recorder(a, "t");
    const onB = recorder(b, "t");
    a.publish("t", "x".repeat(MAX_WAKE_PAYLOAD_BYTES + 1));
    a.publish("t", "small");
    await eventually("the small one on B", () => onB.length > 0);
    expect(onB).toEqual(["small"]);
    expect(onA).toHaveLength(2);
  });

  it("publishes feed events with QoS 1 under <prefix>/v1/events/ and resolves once the broker has them", async () => {
    const prefix = newPrefix();
    const a = await bus(prefix, "A");
    const consumer = await rawClient();
    const got: { topic: string; payload: string; qos: number }[] = [];
    consumer.on("message", (topic, payload, packet) => got.push({ topic, payload: payload.toString(), qos: packet.qos }));
    await consumer.subscribeAsync(`${prefix}/v1/events/#`, { qos: 1 });
    await a.publishFeed("machines/m1", '{"event":"Allocated"}');
    await eventually("the consumer has the event", () => got.length === 1);
    expect(got).toEqual([{ topic: `${prefix}/v1/events/machines/m1`, payload: '{"event":"Allocated"}', qos: 1 }]);
    await expect(a.publishFeed("bad/#", "{}")).rejects.toThrow(/not a feed topic/);
  });

  it("after the broker restarts: connected goes false and true, both resync, wake-ups resume, and the feed refuses while it is down", async () => {
    const prefix = newPrefix();
    const a = await bus(prefix, "A");
    const b = await bus(prefix, "B");
    let resyncA = 0;
    let resyncB = 0;
    a.onResync(() => resyncA++);
    b.onResync(() => resyncB++);
    const onB = recorder(b, "allocation/m2");
    expect([a.connected, b.connected]).toEqual([true, true]);

    await broker.stop();
    await eventually("both see the broker gone", () => !a.connected && !b.connected);
    await expect(a.publishFeed("machines/m2", "{}")).rejects.toThrow(/127\.0\.0\.1:\d+ is not connected/);
    // Nothing was lost yet that a resync would find: the first connection did not count as one.
    expect([resyncA, resyncB]).toEqual([0, 0]);

    await broker.start();
    await eventually("both connected again", () => a.connected && b.connected, scaled(30_000));
    await eventually("both resynced", () => resyncA >= 1 && resyncB >= 1);
    a.publish("allocation/m2", "after");
    await eventually("B woken after the restart", () => onB.includes("after"));
  });

  it("goes on without an unreachable broker, then connects and resyncs once it is there", async () => {
    const prefix = newPrefix();
    await broker.stop();
    try {
      const a = await bus(prefix, "A", { firstConnectMs: scaled(200) });
      expect(a.connected).toBe(false);
      let resyncs = 0;
      a.onResync(() => resyncs++);
      const seen = recorder(a, "t");
      a.publish("t", "local only");
      expect(seen).toEqual(["local only"]);
      await broker.start();
      await eventually("connected later", () => a.connected, scaled(30_000));
      expect(resyncs).toBe(1);
    } finally {
      await broker.start().catch(() => {});
    }
  });

  it("resyncs when another replica asks (it reconnected, so wake-ups it sent meanwhile were lost), one run per interval however many ask", async () => {
    const prefix = newPrefix();
    // An interval far longer than the test: the asks after the first all fall into it.
    const b = await bus(prefix, "B", { resyncIntervalMs: scaled(600_000) });
    let resyncB = 0;
    b.onResync(() => resyncB++);
    const seen = recorder(b, "t");
    // A raw client announcing as replica "C" stands for a replica right after its reconnect; a burst stands for a hostile one.
    const outsider = await rawClient();
    for (let i = 0; i < 5; i++) await outsider.publishAsync(`${prefix}/v1/wake/bus/resync`, '{"o":"C"}');
    await outsider.publishAsync(`${prefix}/v1/wake/t`, '{"o":"C","p":"after the asks"}');
    // Delivered in order: once this is here, every ask was handled.
    await eventually("the wake-up after the asks", () => seen.length > 0);
    expect(resyncB).toBe(1);
  });

  it("a replica that lost the broker alone makes the others resync once it is back", async () => {
    const prefix = newPrefix();
    const cut = await cuttableProxy(broker.port);
    try {
      const a = await createMqttBus({ url: `mqtt://127.0.0.1:${cut.port}`, prefix, replicaId: "A", reconnectMs: 100 });
      open.push(a);
      const b = await bus(prefix, "B");
      let resyncA = 0;
      let resyncB = 0;
      a.onResync(() => resyncA++);
      b.onResync(() => resyncB++);
      cut.cut();
      await eventually("A lost the broker", () => !a.connected);
      expect(b.connected).toBe(true);
      await eventually("A back and resynced", () => a.connected && resyncA === 1, scaled(30_000));
      await eventually("B resynced because A asked", () => resyncB === 1);
    } finally {
      await cut.close();
    }
  });
});

describe("MQTT bus start against a broker that refuses", () => {
  let strict: PrivateBroker;
  beforeAll(async () => {
    strict = await startPrivateBroker({ extraConfig: ["allow_anonymous false"] });
  });
  afterAll(async () => {
    await strict.dispose();
  });

  it("fails the start naming the broker's host, never the password", async () => {
    const url = `mqtt://metal:s3cr3t-pw@127.0.0.1:${strict.port}`;
    const err = await createMqttBus({ url, prefix: newPrefix(), replicaId: "A" }).then(
      (b) => {
        open.push(b);
        return undefined;
      },
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/refused the connection/);
    expect(err?.message).toContain(`mqtt://127.0.0.1:${strict.port}`);
    expect(err?.message).not.toContain("s3cr3t-pw");
  });
});

describe("MQTT bus credentials in the broker URL", () => {
  it("splits user and password off the URL, decoded", () => {
    expect(splitBrokerCredentials("mqtt://metal:a%3Ab%40c@10.0.0.1:1883")).toEqual({ url: "mqtt://10.0.0.1:1883", username: "metal", password: "a:b@c" });
    expect(splitBrokerCredentials("mqtts://broker:8883")).toEqual({ url: "mqtts://broker:8883" });
    expect(splitBrokerCredentials("mqtt://only-user@broker:1883")).toEqual({ url: "mqtt://broker:1883", username: "only-user", password: undefined });
  });

  it("logs in with a password holding ':' and '@' (the mqtt package alone would cut it at the ':')", async () => {
    const dir = await mkdtemp(join(tmpdir(), "metal-mqtt-pw-"));
    const passwords = join(dir, "passwords");
    await writeFile(passwords, "");
    await execFileAsync("mosquitto_passwd", ["-b", passwords, "metal", "pa:ss@word"]);
    // Started as root, Mosquitto reads it as its own user.
    await chmod(dir, 0o755);
    await chmod(passwords, 0o644);
    const broker = await startPrivateBroker({ extraConfig: ["allow_anonymous false", `password_file ${passwords}`] });
    try {
      const bus = await createMqttBus({ url: `mqtt://metal:${encodeURIComponent("pa:ss@word")}@127.0.0.1:${broker.port}`, prefix: newPrefix(), replicaId: "A" });
      open.push(bus);
      expect(bus.connected).toBe(true);
    } finally {
      await broker.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
