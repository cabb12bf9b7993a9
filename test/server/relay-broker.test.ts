import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RelayBroker, type RelayEnd, type RelayResponse, UNDATED_OUTPUT_NOTICE } from "../../server/sessions/console/relay-broker.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";

/** A fake metal-bmc session: records what it was asked and lets the test answer with a Relay. */
function fakeAgent(broker: RelayBroker, partition = "p1", name = "agent") {
  const asked: { relayId: string; machineId: string }[] = [];
  let fail: Error | undefined;
  const detach = broker.attachAgent(partition, name, async (relayId, machineId) => {
    if (fail) throw fail;
    asked.push({ relayId, machineId });
  });
  return {
    asked,
    detach,
    failWith: (e: Error) => (fail = e),
    /** Plays the Relay stream arriving for the latest ask. */
    relay: (error = ""): RelayEnd | undefined => {
      const a = asked[asked.length - 1]!;
      return broker.claim(partition, { ...a, error });
    },
  };
}

async function take(it: AsyncIterator<RelayResponse>): Promise<RelayResponse> {
  const n = await it.next();
  if (n.done) throw new Error("relay ended");
  return n.value;
}

describe("RelayBroker", () => {
  const m = randomUUID();

  it("joins openConsole with the Relay that names its id; output before the first listener is kept", async () => {
    const broker = new RelayBroker();
    const agent = fakeAgent(broker);
    const opening = broker.openConsole("p1", m.toUpperCase());
    await eventually("the ask", () => agent.asked.length === 1);
    expect(agent.asked[0]!.machineId).toBe(m);
    const end = agent.relay()!;
    const c = await opening;
    end.deliver(new TextEncoder().encode("boot "), new Date());
    end.deliver(new TextEncoder().encode("log"), new Date());
    let text = "";
    c.onData((d) => (text += new TextDecoder().decode(d)));
    expect(text).toBe("boot log");
    const down = end.outgoing[Symbol.asyncIterator]();
    c.write("ls\r");
    c.resize(80, 24);
    expect((await take(down)).kind).toEqual({ case: "data", value: new TextEncoder().encode("ls\r") });
    expect((await take(down)).kind).toMatchObject({ case: "windowSize", value: { columns: 80, rows: 24 } });
    // metal-bmc ending the stream ends the session, cleanly.
    let reason: Error | undefined | null = null;
    c.onClose((r) => (reason = r));
    end.end();
    expect(c.closed).toBe(true);
    expect(reason).toBeUndefined();
    expect((await down.next()).done).toBe(true);
    // The id was used: it cannot be claimed again.
    expect(() => agent.relay()).toThrow(/was not asked for/);
  });

  it("keeps only the newest output while nobody listens", async () => {
    const broker = new RelayBroker({ maxBufferedBytes: 10 });
    const agent = fakeAgent(broker);
    const opening = broker.openConsole("p1", m);
    await eventually("the ask", () => agent.asked.length === 1);
    const end = agent.relay()!;
    const c = await opening;
    for (const s of ["aaaa", "bbbb", "cccc", "dddd"]) end.deliver(new TextEncoder().encode(s), new Date());
    let text = "";
    c.onData((d) => (text += new TextDecoder().decode(d)));
    expect(text).toBe("ccccdddd");
  });

  it("with outputSince, withholds what was produced before it and what carries no time (an old metal-bmc), the latter with one notice", async () => {
    const since = new Date("2026-03-01T10:00:00.000Z");
    const before = new Date(since.getTime() - 1);
    const broker = new RelayBroker();
    const agent = fakeAgent(broker);
    const opening = broker.openConsole("p1", m, { outputSince: since });
    await eventually("the ask", () => agent.asked.length === 1);
    const end = agent.relay()!;
    const c = await opening;
    const bytes = (s: string) => new TextEncoder().encode(s);
    // Scrollback metal-bmc replays: the previous tenant's session, then the reclaim's boot, then the new allocation's install.
    end.deliver(bytes("previous tenant: secret\r\n"), new Date(0));
    end.deliver(bytes("reclaim boot\r\n"), before);
    end.deliver(bytes("no time at all\r\n"), new Date(Number.NaN));
    end.deliver(bytes("install\r\n"), since);
    let text = "";
    c.onData((d) => (text += new TextDecoder().decode(d)));
    end.deliver(bytes("undated one"), undefined);
    end.deliver(bytes("undated two"), undefined);
    end.deliver(bytes("login: "), new Date(since.getTime() + 5_000));
    expect(text).toBe(`install\r\n${UNDATED_OUTPUT_NOTICE}login: `);
    expect(c.withheldBytes).toBe("previous tenant: secret\r\n".length + "reclaim boot\r\n".length + "no time at all\r\n".length + "undated oneundated two".length);
    c.close();

    // Without outputSince (an operator admin on a free machine) everything is shown, dated or not.
    const all = broker.openConsole("p1", m);
    await eventually("the second ask", () => agent.asked.length === 2);
    const end2 = agent.relay()!;
    const c2 = await all;
    let text2 = "";
    c2.onData((d) => (text2 += new TextDecoder().decode(d)));
    end2.deliver(bytes("old "), new Date(0));
    end2.deliver(bytes("undated"), undefined);
    expect(text2).toBe("old undated");
    expect(c2.withheldBytes).toBe(0);
    c2.close();
  });

  it("fails clearly: no agent here, the ask refused, the agent's open error, no relay in time, cancelled", async () => {
    const broker = new RelayBroker({ replica: "replica-a" });
    const none = await expectCode(broker.openConsole("p1", m), Code.FailedPrecondition);
    expect(none.rawMessage).toContain('no metal-bmc of partition "p1" is connected to this replica (replica-a)');

    const agent = fakeAgent(broker);
    agent.failWith(new ConnectError('machine "x" not found', Code.NotFound));
    await expectCode(broker.openConsole("p1", m), Code.NotFound, "not found");
    agent.failWith(undefined as unknown as Error);

    const refused = broker.openConsole("p1", m);
    await eventually("the ask", () => agent.asked.length === 1);
    expect(agent.relay("SOL payload already active")).toBeUndefined();
    await expectCode(refused, Code.FailedPrecondition, "SOL payload already active");

    await expectCode(broker.openConsole("p1", m, { timeoutMs: 30 }), Code.DeadlineExceeded, "within 30 ms");
    const abort = new AbortController();
    const cancelled = broker.openConsole("p1", m, { signal: abort.signal });
    abort.abort();
    await expectCode(cancelled, Code.Canceled);
  });

  it("a relay for another partition or machine is refused", async () => {
    const broker = new RelayBroker();
    const agent = fakeAgent(broker);
    const opening = broker.openConsole("p1", m, { timeoutMs: 200 });
    await eventually("the ask", () => agent.asked.length === 1);
    const a = agent.asked[0]!;
    expect(() => broker.claim("p2", { ...a, error: "" })).toThrow(/another partition/);
    expect(() => broker.claim("p1", { ...a, machineId: randomUUID(), error: "" })).toThrow(/is for machine/);
    agent.relay();
    (await opening).close();
  });

  it("the end of the agent's session ends its pending and open consoles, not those of other agents", async () => {
    const broker = new RelayBroker();
    const first = fakeAgent(broker, "p1", "old");
    const opening = broker.openConsole("p1", m);
    await eventually("the ask", () => first.asked.length === 1);
    const c = await (first.relay(), opening);
    const pending = broker.openConsole("p1", m);
    await eventually("the second ask", () => first.asked.length === 2);
    // A newer session of the partition takes new requests.
    const second = fakeAgent(broker, "p1", "new");
    const viaSecond = broker.openConsole("p1", m);
    await eventually("the ask of the new agent", () => second.asked.length === 1);
    let reason: Error | undefined;
    c.onClose((r) => (reason = r));
    first.detach();
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.Unavailable);
    await expectCode(pending, Code.Unavailable, '"old"');
    second.relay();
    const c2 = await viaSecond;
    expect(c2.closed).toBe(false);
    expect(broker.agentsOf("p1")).toEqual(["new"]);
    second.detach();
    expect(c2.closed).toBe(true);
    expect(broker.agentsOf("p1")).toEqual([]);
  });

  it("ends a relay whose metal-bmc does not read", async () => {
    const broker = new RelayBroker({ outboxCapacity: 2 });
    const agent = fakeAgent(broker);
    const opening = broker.openConsole("p1", m);
    await eventually("the ask", () => agent.asked.length === 1);
    agent.relay();
    const c = await opening;
    let reason: Error | undefined;
    c.onClose((r) => (reason = r));
    for (let i = 0; i < 3; i++) c.write("x");
    expect(c.closed).toBe(true);
    expect((reason as ConnectError).code).toBe(Code.ResourceExhausted);
  });
});
