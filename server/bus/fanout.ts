import { EventEmitter } from "node:events";

/**
 * Wakes whoever waits for something that changed in the database, on this
 * replica or (with the MQTT implementation, later) on others. It only wakes:
 * the database holds the truth, so a lost message delays, never loses.
 */
export interface FanoutBus {
  publish(topic: string): void;
  /** Calls `handler` for every publish on `topic` until the returned function is called. */
  subscribe(topic: string, handler: () => void): () => void;
}

/** The bus of a single replica. */
export function createInProcessBus(): FanoutBus {
  const emitter = new EventEmitter();
  // Every open Wait stream subscribes; thousands are normal.
  emitter.setMaxListeners(0);
  return {
    publish: (topic) => void emitter.emit(topic),
    subscribe(topic, handler) {
      emitter.on(topic, handler);
      return () => emitter.off(topic, handler);
    },
  };
}

export const allocationTopic = (machineId: string) => `allocation/${machineId}`;

/** Published after a switch's desired config (its version) changed, so its metal-core session resends it. */
export const switchTopic = (switchId: string) => `switch/${switchId}`;

/** Wakes the sessions of the given switches; without a bus their sessions find the change on their next recheck. */
export function publishSwitchChanges(bus: FanoutBus | undefined, switchIds: readonly string[]): void {
  for (const id of switchIds) bus?.publish(switchTopic(id));
}

/** Published after BMC commands of the partition are queued, so its metal-bmc sessions send them at once. */
export const bmcCommandsTopic = (partition: string) => `bmc-commands/${partition}`;
