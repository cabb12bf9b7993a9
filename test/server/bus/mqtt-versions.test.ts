import { createServer, type Server } from "node:net";
import { Aedes } from "aedes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMqttBus, type MqttBus } from "../../../server/bus/mqtt-bus.js";
import { eventually } from "../../helpers/eventually.js";
import { type PrivateBroker, startPrivateBroker } from "../../helpers/mosquitto.js";

// The bus speaks MQTT 5 for its no-local subscription (the broker keeps a replica's own wake-ups
// from it), and falls back to 3.1.1 on a broker that knows no better, dropping its echoes by origin.
let mosquitto: PrivateBroker;
let aedes: Aedes;
let aedesServer: Server;
let aedesUrl: string;
const open: MqttBus[] = [];

beforeAll(async () => {
  mosquitto = await startPrivateBroker();
  aedes = await Aedes.createBroker({});
  aedesServer = createServer(aedes.handle);
  await new Promise<void>((resolve) => aedesServer.listen(0, "127.0.0.1", resolve));
  aedesUrl = `mqtt://127.0.0.1:${(aedesServer.address() as { port: number }).port}`;
});
afterAll(async () => {
  await Promise.all(open.map((b) => b.close()));
  await mosquitto.dispose();
  await new Promise<void>((resolve) => aedesServer.close(() => resolve()));
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
});

async function pair(url: string, prefix: string): Promise<[MqttBus, MqttBus]> {
  const a = await createMqttBus({ url, prefix, replicaId: "A", reconnectMs: 100 });
  const b = await createMqttBus({ url, prefix, replicaId: "B", reconnectMs: 100 });
  open.push(a, b);
  return [a, b];
}

/** A publishes, B hears it and answers, A hears the answer: by then the broker had sent A any echo of its own publish. */
async function roundTrip(a: MqttBus, b: MqttBus): Promise<{ onA: (string | undefined)[] }> {
  const onA: (string | undefined)[] = [];
  const onB: (string | undefined)[] = [];
  a.subscribe("allocation/m1", (p) => onA.push(p));
  b.subscribe("allocation/m1", (p) => onB.push(p));
  a.publish("allocation/m1", "from-a");
  await eventually("B woken by A", () => onB.length === 1);
  b.publish("allocation/m1", "from-b");
  await eventually("A woken by B", () => onA.length === 2);
  return { onA };
}

describe("MQTT versions", () => {
  it("speaks MQTT 5 with Mosquitto: the broker does not send a replica its own wake-ups back", async () => {
    const [a, b] = await pair(mosquitto.url, "v5");
    expect([a.protocolVersion, b.protocolVersion]).toEqual([5, 5]);
    const { onA } = await roundTrip(a, b);
    expect(onA).toEqual(["from-a", "from-b"]);
    expect(a.echoesDropped).toBe(0);
  });

  it("falls back to MQTT 3.1.1 on a broker without MQTT 5 (aedes): wake-ups cross, its own come back and are dropped", async () => {
    const [a, b] = await pair(aedesUrl, "v4");
    expect([a.protocolVersion, b.protocolVersion]).toEqual([4, 4]);
    const { onA } = await roundTrip(a, b);
    // Exactly once on A: the echo of "from-a" arrived and was dropped by its origin.
    expect(onA).toEqual(["from-a", "from-b"]);
    expect(a.echoesDropped).toBeGreaterThanOrEqual(1);
  });
});
