import { AsyncQueue } from "../../client/async-queue.js";
import type { FanoutBus } from "../bus/fanout.js";
import type { ConnectionHandle, ConnectionRegistry, DaemonKind } from "./connections.js";

export interface DaemonSessionOptions {
  /** Messages queued towards the daemon before the session is ended as stuck (only sessions that `send`). */
  capacity?: number;
  /** The error a full queue ends the session with: the daemon does not read, and gets the full state when it reconnects. */
  stuck?: () => Error;
}

const NO_OPTIONS: DaemonSessionOptions = {};

/**
 * The skeleton every long-lived stream with an edge daemon shares (switch,
 * BMC, console relay, Wait): one way to end (the first reason counts; none
 * is a clean end), wake-ups from the fan-out bus, a bounded queue towards
 * the daemon, the daemon's messages handled one after another, the replica's
 * connection registry, a ticker for heartbeats, and one place that undoes
 * all of it. The call's abort (the daemon went away, or the server shuts
 * down) ends the session cleanly.
 *
 * A session is level-triggered: `pump` re-reads the truth from the database
 * whenever the session is woken (by the bus, a ticker, or the daemon), so a
 * lost wake-up delays, never loses. Everything it needs is passed in: the
 * bus it listens on and the registry it joins belong to the composition root.
 *
 * Kept small on purpose: a replica holds ten thousand Wait sessions at once.
 */
export class DaemonSession<Out = never> {
  private reason: Error | undefined;
  private done = false;
  private woken = false;
  /** Resolves a pending `sleep`. */
  private wakeSleeper: (() => void) | undefined;
  private cleanups: (() => void)[] | undefined;
  private queue: AsyncQueue<Out> | undefined;
  private handle: ConnectionHandle | undefined;
  private lastHeardMs = Date.now();

  constructor(
    private readonly call: AbortSignal,
    private readonly options: DaemonSessionOptions = NO_OPTIONS,
  ) {
    if (call.aborted) this.done = true;
    else call.addEventListener("abort", this, { once: true });
  }

  /** The call's abort (an EventListener object, so that no closure per session is needed). */
  handleEvent(): void {
    this.end();
  }

  get ended(): boolean {
    return this.done;
  }

  /** Why the session ended; undefined while it runs or after a clean end. */
  get endReason(): Error | undefined {
    return this.reason;
  }

  /**
   * Ends the session: the first call decides the reason (undefined: a clean
   * end, nothing to tell the daemon). Wakes a sleeping pump, closes the queue
   * and runs the end hooks at once, not when the handler's generator unwinds.
   */
  end(reason?: Error): void {
    if (this.done) return;
    this.done = true;
    this.reason = reason;
    this.queue?.close();
    this.interrupt();
    const hooks = this.cleanups;
    this.cleanups = undefined;
    for (const h of hooks ?? []) h();
  }

  /** Runs `hook` once when the session ends (at once when it has). */
  onEnd(hook: () => void): void {
    if (this.done) return hook();
    (this.cleanups ??= []).push(hook);
  }

  /** Ends the session (if it still runs) and lets go of the call; put it in the handler's `finally`. */
  close(): void {
    this.end();
    this.call.removeEventListener("abort", this);
  }

  /** Something changed: the pump (or a sleeper) runs again. */
  readonly wake = (): void => {
    this.woken = true;
    this.interrupt();
  };

  /**
   * Every publish on `topic` wakes the session (after calling `onPublish`, if
   * given) until it ends. Listen before the first read, so that no change can
   * fall in between.
   */
  listen(bus: FanoutBus | undefined, topic: string, onPublish?: () => void): void {
    if (!bus || this.done) return;
    const handler = onPublish
      ? () => {
          onPublish();
          this.wake();
        }
      : this.wake;
    this.onEnd(bus.subscribe(topic, handler));
  }

  /**
   * Wakes the session (after calling `onResync`, if given) whenever wake-ups
   * from other replicas may have been lost: the broker connection came back.
   * Only for sessions a replica holds few of (switch, BMC); Wait sessions are
   * re-checked together by their registry instead.
   */
  listenResync(bus: FanoutBus | undefined, onResync?: () => void): void {
    if (!bus || this.done) return;
    this.onEnd(
      bus.onResync(() => {
        onResync?.();
        this.wake();
      }),
    );
  }

  /**
   * Joins the replica's registry of connected daemons. A newer session of the
   * same daemon replaces this one: it ends with `replaced(why)`.
   */
  attach(connections: ConnectionRegistry | undefined, kind: DaemonKind, id: string, partition: string, replaced: (why: string) => Error): void {
    if (!connections || this.done) return;
    const handle = connections.register(kind, id, partition);
    this.handle = handle;
    const onReplaced = () => this.end(replaced(String((handle.signal.reason as Error | undefined)?.message ?? "connection closed")));
    handle.signal.addEventListener("abort", onReplaced, { once: true });
    this.onEnd(() => {
      handle.signal.removeEventListener("abort", onReplaced);
      handle.close();
    });
  }

  /** The daemon said something: it is alive. */
  heard(): void {
    this.lastHeardMs = Date.now();
    this.handle?.touch();
  }

  /** How long the daemon has said nothing. */
  silentForMs(): number {
    return Date.now() - this.lastHeardMs;
  }

  /**
   * Ends the session with `error()` when the daemon has said nothing for
   * longer than `limitMs`. Checked once the input already waiting has been
   * read, so that a stall of this process is not taken for the daemon's silence.
   */
  endIfSilent(limitMs: number, error: () => Error): void {
    setImmediate(() => {
      if (!this.done && this.silentForMs() > limitMs) this.end(error());
    });
  }

  /** Calls `tick` every `ms` until the session ends. */
  every(ms: number, tick: () => void): void {
    if (this.done) return;
    const t = setInterval(tick, ms);
    this.onEnd(() => clearInterval(t));
  }

  /** Queues a message towards the daemon; a full queue ends the session as stuck. */
  send(msg: Out): void {
    if (this.done) return;
    if (!this.outbox().push(msg)) this.end(this.options.stuck?.() ?? new Error("the daemon does not read its session"));
  }

  /**
   * The queued messages, until the session ends; then the reason it ended is
   * thrown, unless the end was clean or the call itself went away (nobody is
   * left to tell). Yield them from the handler.
   */
  async *outgoing(): AsyncGenerator<Out> {
    for await (const msg of this.outbox()) {
      if (this.done) break;
      yield msg;
    }
    if (this.reason && !this.call.aborted) throw this.reason;
  }

  /**
   * Handles the daemon's messages one after another, each finished before the
   * next is read, so its reports keep their order. The end of its stream ends
   * the session cleanly; an error (a bad message) ends it with that error.
   */
  read<In>(messages: AsyncIterator<In>, handle: (msg: In) => Promise<void> | void): void {
    void (async () => {
      for (;;) {
        const n = await messages.next();
        if (n.done || this.done) return this.end();
        this.heard();
        await handle(n.value);
      }
    })().catch((err: unknown) => this.end(asError(err)));
  }

  /**
   * Runs `sync` at once and again whenever the session was woken meanwhile,
   * one run at a time, until the session ends; an error ends the session. For
   * sessions that push level-triggered state: `sync` re-reads and sends what
   * changed. Resolves when the session has ended.
   */
  async pump(sync: () => Promise<void>): Promise<void> {
    this.woken = true;
    try {
      // A wake during `sync` leaves the flag set, so the next sleep returns at once and `sync` runs again.
      while (!this.done) if (await this.sleep()) await sync();
    } catch (err) {
      this.end(asError(err));
    }
  }

  /**
   * Waits until the session is woken or ends, or `ms` passed (no limit when
   * absent). True when it was woken; the wake is used up then. A plain
   * promise, not an async function: every open Wait stream sleeps here.
   */
  sleep(ms?: number): Promise<boolean> {
    if (this.woken || this.done) return Promise.resolve(this.takeWake());
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = () => {
        clearTimeout(timer);
        if (this.wakeSleeper === settle) this.wakeSleeper = undefined;
        resolve(this.takeWake());
      };
      if (ms !== undefined) timer = setTimeout(settle, ms);
      this.wakeSleeper = settle;
    });
  }

  /** Whether the session was woken (and still runs); clears the wake. */
  private takeWake(): boolean {
    const woken = this.woken && !this.done;
    this.woken = false;
    return woken;
  }

  private interrupt(): void {
    const w = this.wakeSleeper;
    this.wakeSleeper = undefined;
    w?.();
  }

  private outbox(): AsyncQueue<Out> {
    if (!this.queue) {
      // Bounded: the state is level-triggered, so a daemon that does not read needs no backlog, only a reconnect.
      this.queue = new AsyncQueue<Out>({ capacity: this.options.capacity ?? 64 });
      if (this.done) this.queue.close();
    }
    return this.queue;
  }
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
