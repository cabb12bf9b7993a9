import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createInProcessBus } from "../../../server/bus/fanout.js";
import { ConnectionRegistry } from "../../../server/sessions/connections.js";
import { DaemonSession } from "../../../server/sessions/daemon-session.js";
import { eventually } from "../../helpers/eventually.js";

/** Everything `outgoing` yields until it ends, and how it ended (undefined: cleanly). */
async function drain<T>(s: DaemonSession<T>): Promise<{ got: T[]; error: unknown }> {
  const got: T[] = [];
  try {
    for await (const m of s.outgoing()) got.push(m);
    return { got, error: undefined };
  } catch (error) {
    return { got, error };
  }
}

/** A daemon's side of a stream that the test feeds by hand. */
function daemonMessages<T>() {
  const queue: T[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  const it = (async function* () {
    for (;;) {
      if (queue.length > 0) yield queue.shift()!;
      else if (closed) return;
      else await new Promise<void>((r) => (wake = r));
    }
  })();
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  return {
    it,
    say: (m: T) => {
      queue.push(m);
      poke();
    },
    close: () => {
      closed = true;
      poke();
    },
  };
}

describe("DaemonSession", () => {
  it("yields what was sent, and ends cleanly when the daemon closes its side", async () => {
    const s = new DaemonSession<string>(new AbortController().signal);
    const daemon = daemonMessages<string>();
    const heard: string[] = [];
    s.read(daemon.it, (m) => void heard.push(m));
    s.send("config");
    const out = drain(s);
    daemon.say("report");
    await eventually("the report handled", () => heard.length === 1);
    daemon.close();
    expect(await out).toEqual({ got: ["config"], error: undefined });
    expect(s.ended).toBe(true);
  });

  it("tells the daemon why it ended, unless its call went away", async () => {
    const failing = new DaemonSession<string>(new AbortController().signal);
    const why = new ConnectError("bad report", Code.InvalidArgument);
    const daemon = daemonMessages<string>();
    failing.read(daemon.it, () => {
      throw why;
    });
    daemon.say("garbage");
    expect((await drain(failing)).error).toBe(why);

    const call = new AbortController();
    const gone = new DaemonSession<string>(call.signal);
    call.abort();
    expect(gone.ended).toBe(true);
    gone.end(why);
    expect(await drain(gone)).toEqual({ got: [], error: undefined });
  });

  it("ends a daemon that does not read with the stuck error, and runs its end hooks once", () => {
    const s = new DaemonSession<number>(new AbortController().signal, { capacity: 2, stuck: () => new ConnectError("stuck", Code.ResourceExhausted) });
    let hooks = 0;
    s.onEnd(() => hooks++);
    s.send(1);
    s.send(2);
    expect(s.ended).toBe(false);
    s.send(3);
    expect(s.ended).toBe(true);
    expect((s.endReason as ConnectError).code).toBe(Code.ResourceExhausted);
    s.end(new Error("later reasons do not count"));
    s.close();
    expect(hooks).toBe(1);
    expect((s.endReason as ConnectError).code).toBe(Code.ResourceExhausted);
  });

  it("pumps once at start and again after a bus wake-up, also one that came during a run; it stops listening when it ends", async () => {
    const bus = createInProcessBus();
    const s = new DaemonSession<number>(new AbortController().signal);
    let runs = 0;
    let release: (() => void) | undefined;
    s.listen(bus, "switch/leaf01");
    const pumping = s.pump(async () => {
      runs++;
      s.send(runs);
      // The first run is held until the test has published during it.
      if (runs === 1) await new Promise<void>((r) => (release = r));
    });
    await eventually("the first run", () => release !== undefined);
    bus.publish("switch/leaf01");
    release!();
    await eventually("the run the wake-up asked for", () => runs === 2);
    bus.publish("switch/leaf01");
    await eventually("a third run", () => runs === 3);
    s.end();
    await pumping;
    bus.publish("switch/leaf01");
    expect(runs).toBe(3);
    expect(await drain(s)).toEqual({ got: [], error: undefined });
  });

  it("a newer connection of the same daemon replaces the session, which leaves the registry when it ends", () => {
    const registry = new ConnectionRegistry("r1");
    const old = new DaemonSession(new AbortController().signal);
    old.attach(registry, "switch", "leaf01", "p1", (why) => new ConnectError(why, Code.Unavailable));
    const fresh = new DaemonSession(new AbortController().signal);
    fresh.attach(registry, "switch", "leaf01", "p1", (why) => new ConnectError(why, Code.Unavailable));
    expect(old.ended).toBe(true);
    expect((old.endReason as ConnectError).code).toBe(Code.Unavailable);
    expect(registry.list().length).toBe(1);
    fresh.close();
    expect(registry.list()).toEqual([]);
  });

  it("judges silence only after the input already waiting was read", async () => {
    const s = new DaemonSession(new AbortController().signal);
    const why = new ConnectError("silent", Code.DeadlineExceeded);
    s.endIfSilent(-1, () => why);
    // Not at once: what the daemon already sent is read first.
    expect(s.ended).toBe(false);
    await eventually("the silence check", () => s.ended);
    expect(s.endReason).toBe(why);
  });

  it("sleep returns true when woken and false when the time passed or the session ended", async () => {
    const s = new DaemonSession(new AbortController().signal);
    const woken = s.sleep(60_000);
    s.wake();
    expect(await woken).toBe(true);
    expect(await s.sleep(1)).toBe(false);
    const ending = s.sleep(60_000);
    s.end();
    expect(await ending).toBe(false);
  });
});
