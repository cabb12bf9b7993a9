import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter, createClient } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { createFailoverTransport } from "../../client/failover-transport.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";

/**
 * A stand-in for one metal-core's machine endpoint: BootService.Register
 * answers with the endpoint's name (and records the bearer token), Wait sends
 * one keepalive and holds the stream open. `cut` drops every connection
 * while the endpoint keeps listening; `close` stops it.
 */
interface FakeEndpoint {
  name: string;
  url: string;
  calls: string[];
  /** Register answers FailedPrecondition while set. */
  refuse: boolean;
  cut(): void;
  close(): Promise<void>;
}

const started: FakeEndpoint[] = [];

async function fakeEndpoint(name: string): Promise<FakeEndpoint> {
  const sessions = new Set<http2.ServerHttp2Session>();
  const ep: FakeEndpoint = {
    name,
    url: "",
    calls: [],
    refuse: false,
    cut: () => {
      for (const s of sessions) s.destroy();
      sessions.clear();
    },
    close: async () => {
      ep.cut();
      await new Promise((r) => server.close(r));
    },
  };
  const routes = (router: ConnectRouter) =>
    router.service(BootService, {
      register: (_req, ctx) => {
        ep.calls.push(`register ${ctx.requestHeader.get("authorization") ?? "none"}`);
        if (ep.refuse) throw new ConnectError("not cabled yet", Code.FailedPrecondition);
        return { size: name };
      },
      async *wait(_req, ctx) {
        ep.calls.push("wait");
        yield {};
        await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
      },
    });
  const server = http2.createServer(connectNodeAdapter({ routes }));
  server.on("session", (s) => sessions.add(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  ep.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  started.push(ep);
  return ep;
}

/** A URL nothing listens on: a port that was just free. */
async function refusingUrl(): Promise<string> {
  const ep = await fakeEndpoint("gone");
  await ep.close();
  return ep.url;
}

afterAll(async () => {
  await Promise.all(started.map((e) => e.close().catch(() => {})));
});

const register = { partition: "p1", machineId: "00000000-0000-4000-8000-000000000001" };

describe("createFailoverTransport", () => {
  it("fails a call over to the next endpoint when the current one refuses, and stays there; the token goes along", async () => {
    const a = await fakeEndpoint("a");
    const b = await fakeEndpoint("b");
    const logs: string[] = [];
    let token = "t1";
    const boot = createClient(BootService, createFailoverTransport({ endpoints: [a.url, b.url], token: () => token, log: (msg) => logs.push(msg) }));
    expect((await boot.register(register)).size).toBe("a");

    await a.close();
    token = "t2";
    expect((await boot.register(register)).size).toBe("b");
    expect(logs).toEqual(["endpoint unavailable, switching"]);
    // The next call starts on b: no second switch.
    expect((await boot.register(register)).size).toBe("b");
    expect(logs).toHaveLength(1);
    expect(b.calls).toEqual(["register Bearer t2", "register Bearer t2"]);

    // A server stream fails over the same way: its one request is sent again.
    const c = createClient(BootService, createFailoverTransport({ endpoints: [a.url, b.url] }));
    const abort = new AbortController();
    for await (const msg of c.wait(register, { signal: abort.signal })) {
      expect(msg.allocation).toBeUndefined();
      break;
    }
    expect(b.calls.at(-1)).toBe("wait");
  });

  it("a stream cut on the current endpoint sends the next call to the next one, though the first still listens", async () => {
    const a = await fakeEndpoint("a");
    const b = await fakeEndpoint("b");
    const boot = createClient(BootService, createFailoverTransport({ endpoints: [a.url, b.url] }));
    const stream = boot.wait(register)[Symbol.asyncIterator]();
    await stream.next();
    expect(a.calls).toEqual(["wait"]);
    a.cut();
    const err = await stream.next().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);
    expect((await boot.register(register)).size).toBe("b");
    expect(a.calls).toEqual(["wait"]);
  });

  it("passes the server's answers and the caller's own cancel through, staying on the endpoint", async () => {
    const a = await fakeEndpoint("a");
    const b = await fakeEndpoint("b");
    a.refuse = true;
    const boot = createClient(BootService, createFailoverTransport({ endpoints: [a.url, b.url] }));
    await expect(boot.register(register)).rejects.toMatchObject({ code: Code.FailedPrecondition, rawMessage: "not cabled yet" });
    const abort = new AbortController();
    const stream = boot.wait(register, { signal: abort.signal })[Symbol.asyncIterator]();
    await stream.next();
    abort.abort();
    await expect(stream.next()).rejects.toMatchObject({ code: Code.Canceled });
    a.refuse = false;
    expect((await boot.register(register)).size).toBe("a");
    expect(b.calls).toEqual([]);
  });

  it("all endpoints down: Unavailable, each tried once", async () => {
    const logs: Record<string, unknown>[] = [];
    const urls = [await refusingUrl(), await refusingUrl()];
    const boot = createClient(BootService, createFailoverTransport({ endpoints: urls, log: (_m, f) => logs.push(f ?? {}) }));
    await expect(boot.register(register)).rejects.toMatchObject({ code: Code.Unavailable });
    expect(logs.map((l) => [l.from, l.to])).toEqual([
      [urls[0], urls[1]],
      [urls[1], urls[0]],
    ]);
    const wait = async () => {
      for await (const _ of boot.wait(register)) return;
    };
    await expect(wait()).rejects.toMatchObject({ code: Code.Unavailable });
    expect(() => createFailoverTransport({ endpoints: [] })).toThrow("at least one endpoint");
  });
});
