import { changesTopic, type FanoutBus } from "../bus/fanout.js";
import type { DbHandle } from "../db/handle.js";
import type { Logger } from "../logger.js";
import { type RoundResult, runRound } from "./round.js";
import type { FeedSink } from "./sink.js";

export interface EventFeedOptions {
  db: DbHandle;
  /** Wakes the feed on `changesTopic` (published after a change the log recorded, by any replica). */
  bus: FanoutBus;
  sink: FeedSink;
  log: Logger;
  /**
   * The safety net: a round also runs this often, for a wake-up that was lost
   * or came while an older transaction still ran (its change is not settled
   * yet), for the replica that takes over from a dead one, and to retry after
   * a failed publish. Bounds the feed's delay when no wake-up arrives.
   */
  intervalMs?: number;
  batchSize?: number;
  /** A publish not acknowledged within this ends the round; it is retried from the cursor. */
  publishTimeoutMs?: number;
  /** The embedded database: one replica only, no lock and no transaction held while publishing (see round.ts). */
  singleReplica?: boolean;
}

export interface EventFeed {
  /** Stops the timer and the wake-ups; a round in flight is abandoned (rolled back, so its batch is sent again next time). */
  stop(): Promise<void>;
}

const DEFAULT_INTERVAL_MS = 1_000;
const DEFAULT_BATCH_SIZE = 200;
const DEFAULT_PUBLISH_TIMEOUT_MS = 10_000;

/**
 * Publishes the change log on the event feed (docs/event-feed.md). Every
 * replica runs one; a round takes the feed's advisory lock, so one at a time
 * publishes and the cursor moves only after the broker acknowledged. Rounds
 * never overlap here: a wake-up during a round runs one more after it.
 */
export function startEventFeed(opts: EventFeedOptions): EventFeed {
  const { log } = opts;
  const publishTimeoutMs = opts.publishTimeoutMs ?? DEFAULT_PUBLISH_TIMEOUT_MS;
  const stopping = new AbortController();
  let running: Promise<void> | undefined;
  let again = false;
  let failing = false;

  const publish = (sink: FeedSink, topic: string, payload: string) => bounded(sink.publishFeed(topic, payload), publishTimeoutMs, stopping.signal);

  async function rounds(): Promise<void> {
    do {
      again = false;
      let result: RoundResult;
      try {
        result = await runRound({ db: opts.db, sink: opts.sink, batchSize: opts.batchSize ?? DEFAULT_BATCH_SIZE, publish, singleReplica: opts.singleReplica === true });
      } catch (err) {
        if (stopping.signal.aborted) return;
        // One line per outage, not one per retry; the next tick retries from the cursor.
        if (!failing) log.warn({ err }, "event feed: a round failed (broker or database); it resumes from its cursor");
        failing = true;
        return;
      }
      if (failing) log.info("event feed: publishing again");
      failing = false;
      if (result.kind === "started") log.info({ tx: result.tx }, "event feed: no cursor yet, starting at the current position");
      if (result.kind === "published" && result.behindPrune) log.warn("event feed: changes older than the change log keeps were pruned before they were published");
      if (result.kind === "started" || (result.kind === "published" && result.more)) again = true;
    } while (again && !stopping.signal.aborted);
  }

  function wake(): void {
    if (stopping.signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = rounds().finally(() => {
      running = undefined;
    });
  }

  const unsubscribe = opts.bus.subscribe(changesTopic, wake);
  const timer = setInterval(wake, opts.intervalMs ?? DEFAULT_INTERVAL_MS);
  timer.unref();
  wake();

  return {
    async stop() {
      stopping.abort();
      clearInterval(timer);
      unsubscribe();
      await running;
    },
  };
}

/** The sink's promise, failing after `ms` or when the feed stops (a publish can hang while the broker is away). */
function bounded(p: Promise<void>, ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (why: string) => reject(new Error(why));
    const onStop = () => fail("the event feed stopped");
    const timer = setTimeout(() => fail(`the broker did not acknowledge within ${ms} ms`), ms);
    stop.addEventListener("abort", onStop, { once: true });
    const done = () => {
      clearTimeout(timer);
      stop.removeEventListener("abort", onStop);
    };
    p.then(
      () => {
        done();
        resolve();
      },
      (err: unknown) => {
        done();
        reject(err);
      },
    );
    if (stop.aborted) onStop();
  });
}
