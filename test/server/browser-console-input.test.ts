import { describe, expect, it } from "vitest";
import { type ConsoleInput, InputBatcher } from "../../web/console/input-batcher.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A fake Input call that the test answers by hand, so what is in flight is under the test's control. */
function calls() {
  const sent: { input: ConsoleInput; answer: (err?: Error) => void }[] = [];
  const send = (input: ConsoleInput) => new Promise<void>((ok, fail) => sent.push({ input, answer: (err) => (err ? fail(err) : ok()) }));
  return { sent, send };
}
const settle = () => new Promise((r) => setImmediate(r));

describe("InputBatcher (SerialConsole's keystrokes on their way to ConsoleService.Input)", () => {
  it("waits for the console to open, sends the first key at once and batches what is typed while a call is on its way, in order", async () => {
    const { sent, send } = calls();
    const b = new InputBatcher(send, () => {});
    b.type(enc.encode("l"));
    expect(sent).toHaveLength(0);
    b.start();
    expect(sent.map((c) => dec.decode(c.input.data))).toEqual(["l"]);
    b.type(enc.encode("s"));
    b.type(enc.encode(" -l"));
    b.resize(100, 30);
    b.resize(120, 40);
    expect(sent).toHaveLength(1);
    sent[0]!.answer();
    await settle();
    expect(sent).toHaveLength(2);
    expect(dec.decode(sent[1]!.input.data)).toBe("s -l");
    expect(sent[1]!.input.resize).toEqual({ columns: 120, rows: 40 });
    sent[1]!.answer();
    await settle();
    expect(b.idle).toBe(true);
  });

  it("splits a paste larger than the server's bound across calls, keeping every byte in order", async () => {
    const { sent, send } = calls();
    const b = new InputBatcher(send, () => {}, 4);
    b.start();
    b.type(enc.encode("abcdefghij"));
    const got: string[] = [];
    while (!b.idle) {
      const c = sent.at(-1)!;
      got.push(dec.decode(c.input.data));
      c.answer();
      await settle();
    }
    expect(got).toEqual(["abcd", "efgh", "ij"]);
  });

  it("stops at the first failed call and says why once (the session is gone)", async () => {
    const { sent, send } = calls();
    const errors: unknown[] = [];
    const b = new InputBatcher(send, (e) => errors.push(e));
    b.start();
    b.type(enc.encode("a"));
    b.type(enc.encode("b"));
    sent[0]!.answer(new Error("console session not found"));
    await settle();
    b.type(enc.encode("c"));
    expect(sent).toHaveLength(1);
    expect(errors).toEqual([new Error("console session not found")]);
  });
});
