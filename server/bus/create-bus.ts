import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import { createInProcessBus, type FanoutBus } from "./fanout.js";
import { createMqttBus, type MqttBus } from "./mqtt-bus.js";

/**
 * The bus this replica runs with: MQTT when MQTT_URL is set (wake-ups reach
 * every replica), otherwise in-process (one replica). `replicaId` is this
 * replica's row id in the replicas table (config.replicaId or the generated
 * default): it marks this replica's own wake-ups so it ignores their echo
 * from the broker, and the revocation acknowledgements are addressed by it.
 */
export async function createBus(config: Pick<Config, "mqttUrl" | "mqttTopicPrefix">, log: Logger, replicaId: string): Promise<FanoutBus | MqttBus> {
  if (config.mqttUrl === undefined) return createInProcessBus();
  return createMqttBus({ url: config.mqttUrl, prefix: config.mqttTopicPrefix, replicaId, log });
}

/** Whether the bus can publish the event feed (only the MQTT bus can). */
export const isMqttBus = (bus: FanoutBus): bus is MqttBus => typeof (bus as Partial<MqttBus>).publishFeed === "function";
