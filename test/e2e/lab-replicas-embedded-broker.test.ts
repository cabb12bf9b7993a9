import { type Socket, connect as tcpConnect } from "node:net";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_BYTES_BEFORE_AUTH } from "../../edge/lab/broker.js";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { allocationTopic } from "../../server/bus/fanout.js";
import { eventually } from "../helpers/eventually.js";
import { type EmbeddedBrokerLab, startEmbeddedBrokerLab } from "../helpers/lab-replicas.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * `npm start -- --replicas 2` without MQTT_URL: the lab embeds an aedes
 * broker (edge/lab/broker.ts) that only its replicas hold the password of.
 * The one machine's metal-hammer is pinned to the second replica (through
 * its leaves' metal-cores, which dial it), so an
 * allocation made on the first reaches its Wait stream only across
 * replicas, through that broker. Heavy: two metal-api processes; one lab for
 * the file, one machine.
 */
let t: EmbeddedBrokerLab;
const HAMMER_REPLICA = 1;
const ALLOCATING_REPLICA = 0;

/**
 * The replicas run metal-api's default Wait timing: a waiting machine's
 * stream re-reads the database every 60 s as the safety net. Reaching the
 * hammer well within that (scaled, also on a slow machine) is the broker's work.
 */
const WAKE_UP_MS = scaled(15_000);

/** How long a refused client may take to hear its CONNACK on a busy machine. */
const CONNECT_MS = scaled(5_000);

const clients: MqttClient[] = [];

/** A real MQTT 3.1.1 client, as the replicas' bus is, that never redials: one CONNECT, one answer. */
async function dial(url: string | URL, auth: { username?: string; password?: string } = {}): Promise<MqttClient> {
  const client = await connectAsync(url.toString(), { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: CONNECT_MS, ...auth });
  clients.push(client);
  return client;
}

/** The CONNACK refusal code a client got, or "accepted". */
async function refusal(url: string | URL, auth: { username?: string; password?: string }): Promise<number | string> {
  return dial(url, auth).then(
    async (client) => {
      await client.endAsync(true);
      return "accepted";
    },
    (err: Error & { code?: unknown }) => (typeof err.code === "number" ? err.code : `${err.code ?? ""} ${err.message}`),
  );
}

/** The broker's address with no credentials in it. */
function bare(url: string): URL {
  const u = new URL(url);
  u.username = "";
  u.password = "";
  return u;
}

/**
 * A raw TCP client that starts a CONNECT packet announcing `announced` bytes
 * and sends `sent` of them: the broker cannot answer before the packet is
 * complete, so what it does meanwhile is its bound on unauthenticated input.
 */
async function partialConnect(address: string, announced: number, sent: number): Promise<{ socket: Socket; closed: () => boolean }> {
  const sep = address.lastIndexOf(":");
  const socket = tcpConnect({ host: address.slice(0, sep), port: Number(address.slice(sep + 1)) });
  let closed = false;
  socket.on("error", () => {});
  socket.once("close", () => {
    closed = true;
  });
  await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  // MQTT's remaining length: 7 bits a byte, least significant first.
  const length: number[] = [];
  for (let n = announced; ; ) {
    const digit = n % 128;
    n = Math.floor(n / 128);
    length.push(n > 0 ? digit | 128 : digit);
    if (n === 0) break;
  }
  // Handed to the kernel whether or not the broker has cut the connection by then.
  await new Promise<void>((resolve) => socket.write(Buffer.concat([Buffer.from([0x10, ...length]), Buffer.alloc(sent, 0x41)]), () => resolve()));
  return { socket, closed: () => closed };
}

beforeAll(async () => {
  t = await startEmbeddedBrokerLab({
    machines: 1,
    replicas: 2,
    // metal-hammer's calls go through its leaves' metal-cores: pinning both leaves pins every hammer.
    dial: (daemon, replicas) => (daemon === "leaf01" || daemon === "leaf02" ? replicas[HAMMER_REPLICA] : undefined),
  });
  const id = t.lab.machines[0]!.uuid;
  await eventually(
    "the machine to wait",
    async () => {
      const m = await t.machine(id);
      return m.waiting && m.events?.log[0]?.type === T.WAITING;
    },
    scaled(60_000),
  );
}, scaled(180_000));

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.endAsync(true)));
  await t?.dispose();
});

describe("two replicas woken through the lab's embedded aedes broker [heavy]", () => {
  it("hands the replicas an embedded broker on 127.0.0.1 with a user name and a long random password", () => {
    const url = new URL(t.brokerUrl);
    expect(url.protocol).toBe("mqtt:");
    expect(url.host).toBe(t.lab.brokerAddress);
    expect(url.hostname).toBe("127.0.0.1");
    expect(url.username).toBe("metal-lab");
    expect(decodeURIComponent(url.password).length).toBeGreaterThanOrEqual(20);
    // Every replica got the same broker.
    expect(new Set(t.lab.replicas.map((r) => r.opts.env.MQTT_URL))).toEqual(new Set([t.brokerUrl]));
  });

  it("an allocation on replica 1 is published on the broker and reaches the hammer waiting on replica 2 well before the safety net", async () => {
    const machineId = t.lab.machines[0]!.uuid;
    // With the lab's credentials a client is accepted and sees the replicas' wake-ups.
    const observer = await dial(t.brokerUrl);
    const wakeTopic = `metal/v1/wake/${allocationTopic(machineId)}`;
    const origins: string[] = [];
    observer.on("message", (topic, payload) => {
      if (topic === wakeTopic) origins.push((JSON.parse(payload.toString("utf8")) as { o: string }).o);
    });
    await observer.subscribeAsync("metal/v1/wake/#", { qos: 0 });
    expect(origins).toEqual([]);

    const { machine } = await t.admin(MachineService, ALLOCATING_REPLICA).create({
      project: LAB.project,
      partition: LAB.partition,
      size: LAB.size,
      image: "debian-12",
      hostname: "woken-by-aedes",
      networks: [t.lab.projectNetwork],
    });
    expect(machine?.id).toBe(machineId);
    await eventually("the hammer on replica 2 to start installing", async () => (await t.events(machineId)).includes(T.INSTALLING), WAKE_UP_MS);
    // The wake-up the allocating replica sent went through the embedded broker.
    await eventually("the allocation's wake-up on the broker", () => origins.includes(t.lab.replicas[ALLOCATING_REPLICA]!.id));
    expect((await t.machine(machineId)).allocation?.hostname).toBe("woken-by-aedes");
  });

  it("refuses a client without the lab's credentials: none, a wrong password, a wrong user name", async () => {
    const url = new URL(t.brokerUrl);
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    const at = bare(t.brokerUrl);
    // MQTT 3.1.1 CONNACK 4: bad user name or password.
    expect(await refusal(at, {})).toBe(4);
    expect(await refusal(at, { username: user })).toBe(4);
    expect(await refusal(at, { username: user, password: `${password}x` })).toBe(4);
    expect(await refusal(at, { username: user, password: password.slice(0, -1) })).toBe(4);
    expect(await refusal(at, { username: user, password: `${password.slice(0, -1)}${password.endsWith("A") ? "B" : "A"}` })).toBe(4);
    expect(await refusal(at, { username: "someone", password })).toBe(4);
    // The same address with the lab's credentials is accepted: the refusals above are the credentials', not the broker's being away.
    expect(await refusal(at, { username: user, password })).toBe("accepted");
  });

  it("cuts a client that sends more than a CONNECT's worth of bytes before authenticating, instead of buffering its packet", async () => {
    const announced = 200 * 1024 * 1024;
    // Opened first: were the cut below aedes' connect timeout, this one would have been cut before it.
    const small = await partialConnect(t.lab.brokerAddress!, announced, 1024);
    const large = await partialConnect(t.lab.brokerAddress!, announced, 4 * MAX_BYTES_BEFORE_AUTH);
    try {
      await eventually("the broker to close the connection that sent too much", large.closed);
      expect(small.closed()).toBe(false);
    } finally {
      small.socket.destroy();
      large.socket.destroy();
    }
  });
});
