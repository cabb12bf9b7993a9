/**
 * Where the event feed publishes: the MQTT bus in production
 * (server/bus/mqtt-bus.ts publishes `topic` under `<prefix>/v1/events/` with
 * QoS 1). The feed moves its cursor only after the promise resolved, so a
 * sink must resolve only once the broker acknowledged the message (PUBACK)
 * and reject (or never resolve; the feed times out) when it did not.
 */
export interface FeedSink {
  publishFeed(topic: string, payload: string): Promise<void>;
}
