import type { DbHandle } from "../../db/handle.js";
import { machineAllocationRepository as allocations } from "../../repositories/machine-repository.js";

export interface WaitingTiming {
  /** A waiting lease lasts this long; it is renewed at a third of it. */
  leaseMs: number;
  /** The database is asked this often which waiting machines got allocated, in case a bus message was lost. */
  recheckMs: number;
}

/** Ids per statement when renewing or re-checking, so one statement never grows without bound. */
const BATCH = 1000;

/**
 * The renewal runs in this many slices, one every (lease / 3) / RENEW_SLICES:
 * each machine is still renewed once per third of its lease, but a replica
 * with 5,000 waiting machines writes 500 rows every 2 s instead of 5,000 at
 * once, whose burst of database work stalled allocations' wake-ups on a
 * 2-core machine by ~170 ms every 20 s (the cross-replica Wait bench).
 */
const RENEW_SLICES = 10;

/** A machine's renewal slice: a cheap, stable string hash, so the slices stay even as streams come and go. */
function sliceOf(machineId: string): number {
  let h = 0;
  for (let i = 0; i < machineId.length; i++) h = (h * 31 + machineId.charCodeAt(i)) | 0;
  return (h >>> 0) % RENEW_SLICES;
}

/**
 * The machines whose metal-hammer holds a Wait stream open on THIS replica.
 * Their waiting leases are renewed together, a slice of them at a time (one
 * statement per thousand machines of the slice), and the re-check for
 * allocations a lost bus message did not announce is one query for all of
 * them: 10,000 open streams cost a few statements a minute, not hundreds a
 * second, and no burst of thousands of row writes at once.
 *
 * A machine may briefly have two streams (the hammer reconnected before the
 * old stream was torn down); it stops waiting only when its last stream here
 * ends.
 */
export class WaitingRegistry {
  /** Per machine its stream's wake function, or a Set of them while it has two (a reconnect): one Set per machine would be ~0.2 KiB each. */
  private readonly streams = new Map<string, (() => void) | Set<() => void>>();
  /** Per machine the last of its lease writes still under way (see inOrder). */
  private readonly writes = new Map<string, Promise<void>>();
  private timers: NodeJS.Timeout[] = [];
  /**
   * Called after a lease write that the change log records (a machine starts
   * or stops waiting): wakes the Watch readers (coalesced by the caller).
   * Set by the composition root; a no-op until then.
   */
  notifyChanges: () => void = () => {};

  constructor(
    private readonly db: DbHandle,
    private readonly timing: WaitingTiming,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  start(): void {
    if (this.timers.length > 0) return;
    let slice = 0;
    const renew = setInterval(
      () => {
        const s = slice;
        slice = (slice + 1) % RENEW_SLICES;
        void this.renewSlice(s).catch(this.onError);
      },
      Math.max(1, Math.floor(this.timing.leaseMs / 3 / RENEW_SLICES)),
    );
    const recheck = setInterval(() => void this.recheckAll().catch(this.onError), this.timing.recheckMs);
    renew.unref();
    recheck.unref();
    this.timers = [renew, recheck];
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  /** How many machines wait on this replica. */
  get size(): number {
    return this.streams.size;
  }

  /**
   * Adds an open stream; its machine is waiting from the moment this
   * resolves. `wake` is called when a re-check finds the machine allocated.
   * The returned function removes the stream again.
   */
  async add(machineId: string, wake: () => void): Promise<() => Promise<void>> {
    const present = this.streams.get(machineId);
    if (present === undefined) this.streams.set(machineId, wake);
    else if (typeof present === "function") this.streams.set(machineId, new Set([present, wake]));
    else present.add(wake);
    // Only a new stream starts a lease; periodic renewals merely extend one that nothing has cleared.
    await this.inOrder(machineId, () => allocations.startWaiting(this.db, machineId, this.until()));
    this.notifyChanges();
    return async () => {
      const current = this.streams.get(machineId);
      if (current === wake) {
        this.streams.delete(machineId);
        await this.inOrder(machineId, () => allocations.expireWaiting(this.db, machineId));
        this.notifyChanges();
        return;
      }
      if (typeof current !== "object" || !current.delete(wake)) return;
      // One stream left: back to the plain function.
      if (current.size === 1) this.streams.set(machineId, [...current][0]!);
    };
  }

  /**
   * Runs a machine's lease writes in the order its streams came and went. A
   * hammer that closes one stream and opens the next at once (its pre-install
   * probe, a reconnect) would otherwise race the old stream's expiry against
   * the new stream's start on two pool connections, and an expiry landing
   * last left a waiting machine out of the candidates until the next renewal.
   */
  private inOrder(machineId: string, write: () => Promise<void>): Promise<void> {
    const next = (this.writes.get(machineId) ?? Promise.resolve()).then(write);
    const settled = next.then(
      () => {},
      () => {},
    );
    this.writes.set(machineId, settled);
    void settled.then(() => {
      if (this.writes.get(machineId) === settled) this.writes.delete(machineId);
    });
    return next;
  }

  private until(): Date {
    return new Date(Date.now() + this.timing.leaseMs);
  }

  /** Extends the lease of every machine waiting here. */
  async renewAll(): Promise<void> {
    await this.renew([...this.streams.keys()]);
  }

  /** Extends the leases of the machines of one slice (the timer walks the slices in turn). */
  async renewSlice(slice: number): Promise<void> {
    await this.renew([...this.streams.keys()].filter((id) => sliceOf(id) === slice));
  }

  private async renew(ids: string[]): Promise<void> {
    const until = this.until();
    for (let i = 0; i < ids.length; i += BATCH) await allocations.extendWaitingMany(this.db, ids.slice(i, i + BATCH), until);
    // A renewal alone is no change, but one that revived an expired lease is.
    if (ids.length > 0) this.notifyChanges();
  }

  /** Wakes the streams of machines that got allocated without their stream hearing of it. */
  async recheckAll(): Promise<void> {
    const ids = [...this.streams.keys()];
    for (let i = 0; i < ids.length; i += BATCH) {
      for (const id of await allocations.allocatedAmong(this.db, ids.slice(i, i + BATCH))) {
        const wakers = this.streams.get(id);
        if (typeof wakers === "function") wakers();
        else for (const wake of wakers ?? []) wake();
      }
    }
  }
}
