import { changesTopic, type FanoutBus } from "../../bus/fanout.js";

/**
 * Publishes `changesTopic` (the Watch readers' wake-up, on every replica)
 * once per tick however many writes ask for it within that tick: a burst of
 * a thousand event batches costs the broker a handful of messages, and each
 * wakes one read of the change log per replica. Call it after the change
 * committed; a publish before the commit could wake readers too early (they
 * would find nothing and wait for the safety net).
 */
export function createChangeNotifier(bus: FanoutBus): () => void {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    setImmediate(() => {
      pending = false;
      bus.publish(changesTopic);
    });
  };
}
