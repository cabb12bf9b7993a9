import { EventEmitter } from "node:events";

/**
 * Wakes whoever waits for something that changed in the database, on this
 * replica or, with the MQTT implementation, on every replica. It only wakes:
 * the database holds the truth, so a lost message delays, never loses; every
 * receiver re-reads PostgreSQL and keeps a periodic re-check as the safety net.
 *
 * Topics here are the bus's own short names (e.g. `allocation/<uuid>`); the
 * MQTT implementation maps them under `<prefix>/v1/wake/`.
 */
export interface FanoutBus {
  /** Wakes the subscribers of `topic` here and on the other replicas; `payload` is a small hint (ids), never the truth. */
  publish(topic: string, payload?: string): void;
  /** Calls `handler` for every publish on `topic` (from any replica) until the returned function is called. */
  subscribe(topic: string, handler: (payload: string | undefined) => void): () => void;
  /**
   * Calls `listener` whenever wake-ups from other replicas may have been lost
   * (the broker connection came back): its owner re-reads what it serves.
   * Never called by the in-process bus.
   */
  onResync(listener: () => void): () => void;
  /** Whether wake-ups from other replicas arrive now (always true in-process). */
  readonly connected: boolean;
  /** Stops the bus (disconnects from the broker); publishing afterwards only wakes this replica. */
  close(): Promise<void>;
}

/** The bus of a single replica. */
export function createInProcessBus(): FanoutBus {
  const emitter = localEmitter();
  return {
    publish: (topic, payload) => void emitter.emit(topic, payload),
    subscribe(topic, handler) {
      emitter.on(topic, handler);
      return () => emitter.off(topic, handler);
    },
    onResync: () => () => {},
    connected: true,
    close: async () => {},
  };
}

/** An emitter for this replica's subscribers. Every open Wait stream subscribes; thousands are normal. */
export function localEmitter(): EventEmitter {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return emitter;
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

/** Published after tokens were revoked; the payload is their ids, comma-separated, so every replica drops them from its cache. */
export const tokensRevokedTopic = "tokens/revoked";

/** Published after a change that the change log recorded (machines, their events, switches), so Watch readers read it at once. */
export const changesTopic = "changes";
