import { Code, ConnectError } from "@connectrpc/connect";
import type { Machine } from "../../../gen/metal/api/v1/machine_pb.js";
import { changesTopic, type FanoutBus } from "../../bus/fanout.js";
import { toMachineSummary } from "../../convert/machine.js";
import type { DbHandle } from "../../db/handle.js";
import type { ChangeRow } from "../../db/schema/index.js";
import { changeLogRepository as changes } from "../../repositories/change-log-repository.js";
import { machineRepository } from "../../repositories/machine-repository.js";
import { machineWatchRepository, type WatchedMachine } from "../../repositories/machine-watch-repository.js";
import { tenantMachineRepository as tenantMachines } from "../../repositories/tenant/machine-repository.js";
import { MachineViews, machineView, renderChanges, visible, type WatchMessage, type WatchSpec } from "./render.js";
import { Watcher } from "./watcher.js";

export interface WatchHubOptions {
  /**
   * The safety net: the hub reads the change log at least this often even
   * when no wake-up arrives (a lost bus message, a writer that does not
   * publish), so a change reaches its watchers within this bound plus one
   * read. Default 1 s.
   */
  safetyNetMs?: number;
  /** Change-log rows per read (a transaction is read whole even past it). Default 500. */
  batchSize?: number;
  /** Messages a watcher may have waiting before it is ended with ResourceExhausted. Default 1,000. */
  maxQueued?: number;
  /** A read of the change log failed (logged; the next wake-up tries again). */
  onError?: (err: unknown) => void;
}

const SNAPSHOT_PAGE = 500;
/** Machines per snapshot_batch message (batchSnapshot): a few hundred keep each message well below a megabyte. */
const SNAPSHOT_BATCH = 250;

/** The first re-read after a read found changes held back by an older transaction; it doubles up to the safety net. */
const PENDING_RETRY_MS = 10;

/**
 * The Watch API's one reader of the change log on this replica. Woken by the
 * bus (`changesTopic`, published after committed changes here and on the
 * other replicas) and by the safety-net interval, it reads the settled
 * changes after its cursor in batches, loads the changed machines' current
 * rows once per batch (not per watcher), and hands each watcher what it may
 * see. A thousand watchers cost one read and one load per change, not a
 * thousand.
 *
 * A new watch is served on its own until it reaches the hub: its snapshot
 * (the settled position read BEFORE the rows, so nothing committed after it
 * is missed; a change both in the snapshot and after that position is sent
 * again) or its resume point, then its own reads of the log up to the hub's
 * position, then the hub's dispatches, without a gap (it attaches before its
 * last read) or a duplicate (it drops what it has already sent).
 */
export class WatchHub {
  private cursor = 0;
  private readonly watchers = new Set<Watcher>();
  private reading = false;
  private again = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** Set while changes wait behind a transaction that still runs: the re-read that picks them up. */
  private pendingTimer: NodeJS.Timeout | undefined;
  private pendingDelayMs = PENDING_RETRY_MS;
  private unsubscribe: (() => void)[] = [];
  private ready: Promise<void> | undefined;
  private readonly safetyNetMs: number;
  private readonly batchSize: number;
  private readonly maxQueued: number;
  private readonly onError: (err: unknown) => void;

  constructor(
    private readonly db: DbHandle,
    private readonly bus: FanoutBus,
    options: WatchHubOptions = {},
  ) {
    this.safetyNetMs = options.safetyNetMs ?? 1000;
    this.batchSize = options.batchSize ?? 500;
    this.maxQueued = options.maxQueued ?? 1000;
    this.onError = options.onError ?? (() => {});
  }

  /** Starts listening for wake-ups; the hub's position is the settled one now. Idempotent. */
  start(): Promise<void> {
    if (this.ready) return this.ready;
    this.unsubscribe = [this.bus.subscribe(changesTopic, () => this.wake()), this.bus.onResync(() => this.wake())];
    this.timer = setInterval(() => this.wake(), this.safetyNetMs);
    this.timer.unref();
    this.ready = changes.settledTx(this.db).then((tx) => {
      this.cursor = tx;
    });
    return this.ready;
  }

  /** Stops reading and ends every watcher's stream (their calls end as the server's streams do). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.pendingTimer);
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
  }

  /** Open watches on this replica (tests, metrics). */
  get size(): number {
    return this.watchers.size;
  }

  /** Reads the change log now (or once more after the read under way). */
  wake(): void {
    if (this.stopped || !this.ready) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    void this.drain();
  }

  private async drain(): Promise<void> {
    this.reading = true;
    try {
      await this.ready;
      do {
        this.again = false;
        // Nobody watches here: no read at all (each change wakes every replica). The next watch to
        // attach brings the position forward itself (see watch()).
        if (this.watchers.size === 0) break;
        const rows = await changes.readAfter(this.db, this.cursor, this.batchSize);
        if (rows.length === 0) continue;
        if (this.watchers.size > 0) {
          const views = await this.views(rows);
          // Watchers attached while this batch was read get it too: they attached at the old cursor.
          for (const w of [...this.watchers]) if (!w.failure) w.offer(renderChanges(w.spec, rows, views));
        }
        this.cursor = Math.max(this.cursor, rows[rows.length - 1]!.tx);
        this.pendingDelayMs = PENDING_RETRY_MS;
        if (rows.length >= this.batchSize) this.again = true;
      } while (this.again && !this.stopped);
      await this.retryIfHeldBack();
    } catch (err) {
      this.onError(err);
    } finally {
      this.reading = false;
    }
  }

  /**
   * A wake-up comes when a change committed, but the change is readable only
   * once every older transaction has ended, and the one that ends last may
   * not publish (a job, a heartbeat). So while changes wait behind one, the
   * hub reads again soon (10 ms, doubling up to the safety net) instead of
   * leaving them to the next safety-net read.
   */
  private async retryIfHeldBack(): Promise<void> {
    if (this.stopped || this.watchers.size === 0 || this.pendingTimer) return;
    if (!(await machineWatchRepository.pendingAfter(this.db, this.cursor))) {
      this.pendingDelayMs = PENDING_RETRY_MS;
      return;
    }
    this.pendingTimer = setTimeout(() => {
      this.pendingTimer = undefined;
      this.wake();
    }, this.pendingDelayMs);
    this.pendingTimer.unref();
    this.pendingDelayMs = Math.min(this.safetyNetMs, this.pendingDelayMs * 2);
  }

  private async views(rows: readonly ChangeRow[]): Promise<MachineViews> {
    const ids = [...new Set(rows.filter((r) => r.entity === "machine").map((r) => r.entityId))];
    return new MachineViews(await machineWatchRepository.load(this.db, ids));
  }

  /**
   * One watch's messages: reset and snapshot when asked or needed, then
   * every change it may see, until `signal` ends the call. Throws
   * ResourceExhausted when its reader falls behind by more than the bound.
   */
  async *watch(spec: WatchSpec, signal: AbortSignal): AsyncGenerator<WatchMessage> {
    await this.start();
    let position: number;
    if (spec.sinceRevision === undefined) {
      position = yield* this.snapshot(spec);
    } else {
      // A revision no snapshot or change has given out yet is not a position to resume from: taken as one,
      // the watch would skip every change until the database got there.
      if (spec.sinceRevision > (await changes.settledTx(this.db))) {
        throw new ConnectError("since_revision: is not a revision this server has given out (it lies in the future)", Code.InvalidArgument);
      }
      const pruned = await changes.prunedTx(this.db);
      if (spec.sinceRevision >= pruned) {
        position = spec.sinceRevision;
      } else {
        yield { case: "reset", value: { prunedRevision: BigInt(pruned) } };
        position = yield* this.snapshot(spec);
      }
    }
    // On its own up to where the log is settled now (a long resume does not queue up at the hub)...
    position = yield* this.catchUp(spec, position, Number.POSITIVE_INFINITY);
    // ...then attached, so nothing the hub reads from now on is missed, and once more on its own
    // up to the hub's position at the moment of attaching.
    // With no watch attached the hub did not read; this watch has everything up to `position`, so the
    // hub may start there (a read under way from further back is skipped by the watch: skipUpTo).
    if (this.watchers.size === 0) this.cursor = Math.max(this.cursor, position);
    const watcher = new Watcher(spec, this.maxQueued, this.cursor, (w) => this.watchers.delete(w));
    this.watchers.add(watcher);
    try {
      position = yield* this.catchUp(spec, position, watcher.attachedAt);
      watcher.skipUpTo = position;
      for (;;) {
        const item = await watcher.next(signal);
        if (!item) return;
        yield item.message;
      }
    } finally {
      this.watchers.delete(watcher);
    }
  }

  /**
   * The machines the watch may see now, then snapshot_done; returns the position the snapshot is complete up to.
   * Machines go out one per snapshot message, or with batchSnapshot up to SNAPSHOT_BATCH per snapshot_batch
   * message. The next page is read while this one goes out.
   */
  private async *snapshot(spec: WatchSpec): AsyncGenerator<WatchMessage, number> {
    // Read BEFORE the rows: every transaction at or below it is in them.
    const settled = await changes.settledTx(this.db);
    const a = spec.audience;
    type Page = Awaited<ReturnType<typeof machineRepository.list>>;
    const listPage = (after: string | undefined): Promise<Page> => {
      const page = { limit: SNAPSHOT_PAGE, after };
      const read = a.kind === "tenant" ? tenantMachines.list(this.db, a.scope, page) : machineRepository.list(this.db, { partition: spec.partition }, page);
      // Awaited below unless the watch ended first; a failure then is nobody's to report.
      read.catch(() => {});
      return read;
    };
    const snapshotView = (m: WatchedMachine): Machine => (spec.summary ? toMachineSummary(machineView(m, a)) : machineView(m, a));
    let batch: Machine[] = [];
    const send = function* (m: Machine): Generator<WatchMessage> {
      if (!spec.batchSnapshot) {
        yield { case: "snapshot", value: m };
        return;
      }
      batch.push(m);
      if (batch.length >= SNAPSHOT_BATCH) yield* flush();
    };
    const flush = function* (): Generator<WatchMessage> {
      if (batch.length === 0) return;
      const machines = batch;
      batch = [];
      yield { case: "snapshotBatch", value: { machines } };
    };
    if (spec.machineId !== undefined) {
      const one = a.kind === "tenant" ? await tenantMachines.get(this.db, a.scope, spec.machineId).catch(absentAsUndefined) : await machineRepository.find(this.db, spec.machineId);
      if (one && visible(spec, one.machine.id, one.machine.project, one.machine.partitionId)) yield* send(snapshotView(one));
    } else {
      let reading: Promise<Page> | undefined = listPage(undefined);
      while (reading) {
        const { items, nextPageToken }: Page = await reading;
        reading = nextPageToken === "" || items.length === 0 ? undefined : listPage(items[items.length - 1]!.machine.id);
        for (const m of items) if (visible(spec, m.machine.id, m.machine.project, m.machine.partitionId)) yield* send(snapshotView(m));
      }
    }
    yield* flush();
    yield { case: "snapshotDone", value: { revision: BigInt(settled) } };
    return settled;
  }

  /** This watch's own reads of the log after `from`, up to `upTo`; returns how far it has everything. */
  private async *catchUp(spec: WatchSpec, from: number, upTo: number): AsyncGenerator<WatchMessage, number> {
    let position = from;
    while (position < upTo) {
      const rows = await changes.readAfter(this.db, position, this.batchSize);
      const mine = rows.filter((r) => r.tx <= upTo);
      if (mine.length > 0) {
        for (const item of renderChanges(spec, mine, await this.views(mine))) yield item.message;
        position = mine[mine.length - 1]!.tx;
      }
      // A short read saw every settled change; the hub's position was settled when it read it.
      if (rows.length < this.batchSize || mine.length < rows.length) return Number.isFinite(upTo) ? Math.max(position, upTo) : position;
    }
    return position;
  }
}

function absentAsUndefined(err: unknown): undefined {
  if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
  throw err;
}
