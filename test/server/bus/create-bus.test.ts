import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBus, isMqttBus } from "../../../server/bus/create-bus.js";
import { loadConfig } from "../../../server/config.js";
import { createLogger } from "../../../server/logger.js";
import { eventually } from "../../helpers/eventually.js";
import { type PrivateBroker, startPrivateBroker } from "../../helpers/mosquitto.js";

let broker: PrivateBroker;
beforeAll(async () => {
  broker = await startPrivateBroker();
});
afterAll(async () => {
  await broker.dispose();
});

const log = createLogger("silent", { pretty: false });

describe("createBus", () => {
  it("is in-process without MQTT_URL: one replica, no event feed", async () => {
    const bus = await createBus(loadConfig({}), log, "A");
    expect(isMqttBus(bus)).toBe(false);
    const seen: (string | undefined)[] = [];
    bus.subscribe("t", (p) => seen.push(p));
    bus.publish("t", "x");
    expect(seen).toEqual(["x"]);
    await bus.close();
  });

  it("is the MQTT bus on MQTT_URL under METAL_MQTT_TOPIC_PREFIX, and two of them reach each other", async () => {
    const config = loadConfig({ MQTT_URL: broker.url, METAL_MQTT_TOPIC_PREFIX: "cb" });
    const a = await createBus(config, log, "A");
    const b = await createBus(config, log, "B");
    try {
      expect(isMqttBus(a) && a.connected).toBe(true);
      const seen: (string | undefined)[] = [];
      b.subscribe("t", (p) => seen.push(p));
      a.publish("t", "across");
      await eventually("B woken", () => seen.length === 1);
      expect(seen).toEqual(["across"]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
