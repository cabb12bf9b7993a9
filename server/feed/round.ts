import { machineFeedJson, switchFeedJson } from "../convert/feed.js";
import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import type { ChangeRow } from "../db/schema/index.js";
import { changeLogRepository as changes } from "../repositories/change-log-repository.js";
import { feedRepository as feed } from "../repositories/feed-repository.js";
import type { FeedSink } from "./sink.js";
import { feedTopic } from "./topics.js";

/** The feed's durable position in the change log (table change_cursors). */
export const FEED_CURSOR = "event-feed";

export interface RoundOptions {
  db: DbHandle;
  sink: FeedSink;
  /** Changes per round (a transaction's changes are never split, so a round may hold a few more). */
  batchSize: number;
  /** Publishes one message, failing when the sink takes too long (see publisher.ts). */
  publish(sink: FeedSink, topic: string, payload: string): Promise<void>;
  /**
   * Only one replica can exist (the embedded database): the round runs
   * without the lock and without holding a transaction while it publishes,
   * which on PGlite's single connection would stall every other query.
   */
  singleReplica: boolean;
}

export type RoundResult =
  /** Another replica holds the feed's lock. */
  | { kind: "skipped" }
  /** First start: the cursor was set to the current settled position. */
  | { kind: "started"; tx: number }
  | { kind: "published"; count: number; tx: number; more: boolean; behindPrune: boolean };

/**
 * One round of the feed: take the lock (transaction-scoped, so it is held
 * exactly as long as the round and released by commit, rollback or a lost
 * connection), read the changes after the cursor, publish them one after the
 * other, each acknowledged before the next is sent, and save the cursor in
 * the same transaction. Another replica's round starts only after this one
 * committed, so it reads the saved cursor: no change is published twice in
 * the steady state, none is skipped. When publishing fails, the transaction
 * rolls back and the cursor stays: the next round sends the batch again.
 *
 * Publishing holds a pool connection in a transaction, but one without a
 * transaction id until its last statement (the cursor save), so it never
 * holds back the change log's settled position; its length is bounded by the
 * batch size and the publish timeout.
 */
export function runRound(opts: RoundOptions): Promise<RoundResult> {
  if (opts.singleReplica) return publishBatch(opts.db, opts);
  return inTransaction(opts.db, async (tx) => ((await feed.tryLock(tx)) ? publishBatch(tx, opts) : { kind: "skipped" }));
}

async function publishBatch(db: DbHandle, opts: RoundOptions): Promise<RoundResult> {
  const cursor = await changes.cursor(db, FEED_CURSOR);
  if (cursor === undefined) {
    // First start: from now on, not the whole history that is still in the log (a new consumer wants news).
    const tx = await changes.settledTx(db);
    await changes.saveCursor(db, FEED_CURSOR, tx);
    return { kind: "started", tx };
  }
  const batch = await changes.readAfter(db, cursor, opts.batchSize);
  if (batch.length === 0) return { kind: "published", count: 0, tx: cursor, more: false, behindPrune: false };
  // Changes below the pruned position were deleted before the feed sent them (it was off or down for longer than the log keeps them).
  const behindPrune = cursor < (await changes.prunedTx(db));
  for (const message of await messagesOf(db, batch)) await opts.publish(opts.sink, message.topic, message.payload);
  const last = batch[batch.length - 1]!.tx;
  await changes.saveCursor(db, FEED_CURSOR, last);
  return { kind: "published", count: batch.length, tx: last, more: batch.length >= opts.batchSize, behindPrune };
}

/** The batch's messages in log order; the machines and switches it names are read once each (one query per kind). */
async function messagesOf(db: DbHandle, batch: readonly ChangeRow[]): Promise<{ topic: string; payload: string }[]> {
  const idsOf = (entity: ChangeRow["entity"]) => [...new Set(batch.filter((c) => c.entity === entity).map((c) => c.entityId))];
  const machines = await feed.machines(db, idsOf("machine"));
  const switches = await feed.switches(db, idsOf("switch"));
  return batch.map((change) => ({
    topic: feedTopic(change),
    payload: change.entity === "switch" ? switchFeedJson(change, switches.get(change.entityId)) : machineFeedJson(change, machines.get(change.entityId)),
  }));
}
