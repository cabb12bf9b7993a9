/**
 * The console's fast first table without a browser: the batched snapshot in
 * the table's state, and the Watch web/early-watch.ts sends before the app
 * runs (its request bytes are what connect-web would send, and the app's
 * transport adopts it only for exactly that request). The browser side is
 * in console-load.test.ts (the adoption in a real load).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { MachineServiceWatchRequestSchema as AdminWatchRequestSchema } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineSchema, MachineServiceWatchRequestSchema } from "../../gen/metal/api/v1/machine_pb.js";
import { adoptEarlyWatch } from "../../web/adopt-early-watch.js";
import { EARLY_WATCH_KEY, type EarlyWatch, earlyWatchRequest } from "../../web/early-watch.js";
import { applyWatchMessage, emptyWatchState, sortedMachines } from "../../web/watch-state.js";

/** A Connect envelope around a message, as connect-web frames a streaming request. */
const envelope = (msg: Uint8Array) => {
  const out = new Uint8Array(5 + msg.length);
  new DataView(out.buffer).setUint32(1, msg.length);
  out.set(msg, 5);
  return out;
};

describe("the batched snapshot in the table's state", () => {
  it("adds every machine of a batch, shown once snapshot_done arrives", () => {
    const s = emptyWatchState();
    const batch = (ids: string[]) => ({ case: "snapshotBatch" as const, value: { $typeName: "metal.api.v1.MachineWatchSnapshotBatch" as const, machines: ids.map((id) => create(MachineSchema, { id })) } });
    expect(applyWatchMessage(s, batch(["m3", "m1"]))).toBe(false);
    expect(applyWatchMessage(s, batch(["m2"]))).toBe(false);
    expect(s.live).toBe(false);
    expect(applyWatchMessage(s, { case: "snapshotDone", value: { $typeName: "metal.api.v1.MachineWatchSnapshotDone", revision: 42n } })).toBe(true);
    expect(sortedMachines(s).map((m) => m.id)).toEqual(["m1", "m2", "m3"]);
    expect(s.resumeAfter).toBe(42n);
  });
});

describe("the early Watch's request", () => {
  it("is byte for byte what connect-web sends for the operators' and a project's Watch", () => {
    expect(earlyWatchRequest("*")).toEqual({
      path: "/metal.admin.v1.MachineService/Watch",
      body: envelope(toBinary(AdminWatchRequestSchema, create(AdminWatchRequestSchema, { batchSnapshot: true, summary: true }))),
    });
    // A long name (its length takes two varint bytes) with characters of more than one UTF-8 byte.
    for (const project of ["p", "proj-ä€𝄞", "x".repeat(300)]) {
      expect(earlyWatchRequest(project)).toEqual({
        path: "/metal.api.v1.MachineService/Watch",
        body: envelope(toBinary(MachineServiceWatchRequestSchema, create(MachineServiceWatchRequestSchema, { project, batchSnapshot: true, summary: true }))),
      });
    }
  });
});

describe("adopting the early Watch", () => {
  const g = globalThis as Record<string, unknown>;
  const origin = "http://console.test";
  const plant = (key: string) => {
    const { path, body } = earlyWatchRequest(key);
    const response = Promise.resolve(new Response("early"));
    const early: EarlyWatch = { url: `${origin}${path}`, authorization: "Bearer t1", body, response, controller: new AbortController(), taken: false };
    g[EARLY_WATCH_KEY] = early;
    return early;
  };
  const call = (key: string, token = "t1", signal?: AbortSignal) => {
    const { path, body } = earlyWatchRequest(key);
    return adoptEarlyWatch(`${origin}${path}`, { method: "POST", headers: new Headers({ authorization: `Bearer ${token}` }), body, signal });
  };
  afterEach(() => {
    delete g[EARLY_WATCH_KEY];
  });

  it("hands the first matching Watch call the early response, once, and passes the call's abort on", async () => {
    const early = plant("*");
    const calls = new AbortController();
    const adopted = call("*", "t1", calls.signal);
    expect(adopted).toBe(early.response);
    expect(await (await adopted!).text()).toBe("early");
    expect(call("*")).toBeUndefined();
    calls.abort();
    expect(early.controller.signal.aborted).toBe(true);
  });

  it("aborts it when the first Watch call is another request (another project, another token)", () => {
    for (const [key, token] of [
      ["other", "t1"],
      ["pa", "t2"],
    ] as const) {
      const early = plant("pa");
      expect(call(key, token)).toBeUndefined();
      expect(early.controller.signal.aborted).toBe(true);
      expect(call("pa")).toBeUndefined();
    }
  });

  it("leaves other calls alone", () => {
    const early = plant("*");
    expect(adoptEarlyWatch(`${origin}/metal.api.v1.UserService/Get`, { method: "POST", body: new Uint8Array() })).toBeUndefined();
    expect(early.taken).toBe(false);
    expect(early.controller.signal.aborted).toBe(false);
  });
});
