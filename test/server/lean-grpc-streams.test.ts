import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { compressionGzip, connectNodeAdapter, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BootService, BootServiceWaitRequestSchema } from "../../gen/metal/infra/v1/boot_pb.js";
import { LeanGrpcStreams } from "../../server/http/lean-grpc-streams.js";
import { type Listener, listen } from "../../server/http/listener.js";
import type { AppHandler, NodeHandler } from "../../server/http/node-handler.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";

/**
 * The lean gRPC path on its own: a Wait implementation that answers with
 * what it was asked, behind LeanGrpcStreams with Connect as the fallback.
 */
const MACHINE = "00000000-0000-4000-8000-000000000001";
const seen: string[] = [];
let fallbackCalls = 0;
let interceptorCalls = 0;
const shutdown = new AbortController();
/** The same lean methods on a listener that hands them raw HTTP/2 streams (plain h2c) and on one that does not (as the TLS listener). */
const listeners: Record<"raw" | "compat", Listener> = {} as never;

/** Counts calls and adds a response header, as the observe interceptor does. */
const counting: Interceptor = (next) => async (req) => {
  interceptorCalls++;
  if (req.header.get("authorization") === "Bearer no") throw new ConnectError("bad token", Code.Unauthenticated);
  const res = await next(req);
  res.header.set("x-seen-by", "interceptor");
  return res;
};

beforeAll(async () => {
  const lean = new LeanGrpcStreams([BootService.method.wait]);
  const interceptors = [counting];
  const connect = connectNodeAdapter({
    interceptors,
    routes(router) {
      lean.capture(router).service(BootService, {
        async *wait(req, ctx) {
          seen.push(`${ctx.protocolName}:${req.machineId}`);
          if (req.partition === "boom") throw new Error("a bug, not the caller's fault");
          if (req.partition === "refuse") throw new ConnectError(`machine "${req.machineId}" is not in partition "refuse"`, Code.FailedPrecondition);
          yield {};
          if (req.partition === "hold") await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
          yield {};
        },
        async boot() {
          return { kernel: "k" };
        },
      });
    },
  });
  const fallback: NodeHandler = (req, res) => {
    fallbackCalls++;
    (connect as NodeHandler)(req, res);
  };
  const options = { interceptors, shutdownSignal: shutdown.signal, readMaxBytes: 256 };
  listeners.compat = await listen(lean.handler(fallback, options), "127.0.0.1:0");
  const raw: AppHandler = lean.handler(fallback, options);
  raw.takeStream = lean.streamTaker(options);
  listeners.raw = await listen(raw, "127.0.0.1:0");
});

afterAll(() => Promise.all(Object.values(listeners).map((l) => l.close(100))));

async function drain(it: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of it) n++;
  return n;
}

/** One raw HTTP/2 call to Wait with the given body; the status and message of the trailers (or trailers-only headers). */
function rawWait(listener: Listener, body: Buffer, headers: Record<string, string> = {}): Promise<{ status: string; message: string; headers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(listener.url);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": "/metal.infra.v1.BootService/Wait", "content-type": "application/grpc", te: "trailers", ...headers });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", () => {});
    stream.on("error", reject);
    stream.on("close", () => {
      session.close();
      const t = trailers["grpc-status"] !== undefined ? trailers : head;
      resolve({ status: String(t["grpc-status"]), message: decodeURIComponent(String(t["grpc-message"] ?? "")), headers: head });
    });
    stream.end(body);
  });
}

function envelope(payload: Uint8Array, flags = 0): Buffer {
  const b = Buffer.alloc(5 + payload.length);
  b[0] = flags;
  b.writeUInt32BE(payload.length, 1);
  b.set(payload, 5);
  return b;
}

const request = (partition = "p1") => toBinary(BootServiceWaitRequestSchema, create(BootServiceWaitRequestSchema, { partition, machineId: MACHINE }));

describe.each(["raw", "compat"] as const)("lean gRPC server streams (%s HTTP/2 streams)", (mode) => {
  let listener: Listener;
  beforeAll(() => {
    listener = listeners[mode];
  });

  it("serves binary gRPC calls of the listed method itself, through the interceptors", async () => {
    const before = { fallbackCalls, interceptorCalls };
    const grpc = createClient(BootService, createGrpcTransport({ baseUrl: listener.url }));
    let header: Headers | undefined;
    expect(await drain(grpc.wait({ partition: "p1", machineId: MACHINE }, { onHeader: (h) => (header = h) }))).toBe(2);
    expect(fallbackCalls).toBe(before.fallbackCalls);
    expect(interceptorCalls).toBe(before.interceptorCalls + 1);
    expect(header?.get("x-seen-by")).toBe("interceptor");
    expect(seen.at(-1)).toBe(`grpc:${MACHINE}`);
  });

  it("hands every other protocol, encoding and method to Connect, which answers the same", async () => {
    const before = fallbackCalls;
    const clients = [
      createClient(BootService, createConnectTransport({ baseUrl: listener.url, httpVersion: "1.1" })),
      createClient(BootService, createConnectTransport({ baseUrl: listener.url, httpVersion: "2" })),
      createClient(BootService, createGrpcWebTransport({ baseUrl: listener.url, httpVersion: "2" })),
      createClient(BootService, createGrpcTransport({ baseUrl: listener.url, sendCompression: compressionGzip })),
    ];
    for (const c of clients) expect(await drain(c.wait({ partition: "p1", machineId: MACHINE }))).toBe(2);
    expect((await createClient(BootService, createGrpcTransport({ baseUrl: listener.url })).boot({ partition: "p1" })).kernel).toBe("k");
    expect(fallbackCalls).toBe(before + 5);
  });

  it("gives the same codes and messages as Connect for refusals and bugs", async () => {
    const lean = createClient(BootService, createGrpcTransport({ baseUrl: listener.url }));
    const connect = createClient(BootService, createConnectTransport({ baseUrl: listener.url, httpVersion: "1.1" }));
    for (const [partition, code, text] of [
      ["refuse", Code.FailedPrecondition, `machine "${MACHINE}" is not in partition "refuse"`],
      ["boom", Code.Internal, "internal error"],
    ] as const) {
      const a = await expectCode(drain(lean.wait({ partition, machineId: MACHINE })), code, text);
      const b = await expectCode(drain(connect.wait({ partition, machineId: MACHINE })), code, text);
      expect(a.rawMessage).toBe(b.rawMessage);
    }
    // An interceptor's refusal: the implementation never runs.
    const calls = seen.length;
    const unauth = createClient(BootService, createGrpcTransport({ baseUrl: listener.url, interceptors: [(next) => (req) => (req.header.set("authorization", "Bearer no"), next(req))] }));
    await expectCode(drain(unauth.wait({ partition: "p1", machineId: MACHINE })), Code.Unauthenticated, "bad token");
    expect(seen.length).toBe(calls);
  });

  it("ends a call at its grpc-timeout with DeadlineExceeded", async () => {
    const grpc = createClient(BootService, createGrpcTransport({ baseUrl: listener.url }));
    await expectCode(drain(grpc.wait({ partition: "hold", machineId: MACHINE }, { timeoutMs: 200 })), Code.DeadlineExceeded);
    // The server's own verdict, not only the client's timer.
    const raw = await rawWait(listener, envelope(request("hold")), { "grpc-timeout": "150m" });
    expect(raw.status).toBe(String(Code.DeadlineExceeded));
    expect((await rawWait(listener, envelope(request()), { "grpc-timeout": "soon" })).status).toBe(String(Code.InvalidArgument));
  });

  it("rejects malformed requests with the code Connect uses", async () => {
    const one = envelope(request());
    const cases: [Buffer, Code, string][] = [
      [Buffer.alloc(0), Code.Unimplemented, "missing input message"],
      [Buffer.concat([one, one]), Code.Unimplemented, "extra input message"],
      [envelope(request(), 1), Code.Internal, "compressed message without grpc-encoding"],
      [one.subarray(0, one.length - 2), Code.InvalidArgument, "promised message size"],
      [envelope(Buffer.from([0xff, 0xff, 0xff])), Code.InvalidArgument, "parse binary"],
      [envelope(Buffer.alloc(300, 0x0a)), Code.ResourceExhausted, "readMaxBytes 256"],
    ];
    for (const [body, code, text] of cases) {
      const r = await rawWait(listener, body);
      expect(r.status, text).toBe(String(code));
      expect(r.message).toContain(text);
    }
    expect((await rawWait(listener, one)).status).toBe("0");
  });
});

describe("lean gRPC server streams at shutdown", () => {
  it("ends the open streams of both kinds of listener", async () => {
    let received = 0;
    const held = Object.values(listeners).map(async (l) => {
      let n = 0;
      for await (const _ of createClient(BootService, createGrpcTransport({ baseUrl: l.url })).wait({ partition: "hold", machineId: MACHINE })) n++, received++;
      return n;
    });
    // Both streams are open and past their first message, i.e. held, before the shutdown.
    await eventually("both held streams to deliver their first message", () => received === 2);
    shutdown.abort();
    // The implementation returns when its signal aborts: the stream ends cleanly (nothing more is sent), the hammer reconnects.
    expect(await Promise.all(held)).toEqual([1, 1]);
  });
});

describe("lean gRPC routing", () => {
  const lean = new LeanGrpcStreams([BootService.method.wait]);
  lean.capture({ service: () => undefined } as never).service(BootService, { async *wait() {} } as never);
  const options = { interceptors: [], shutdownSignal: new AbortController().signal, readMaxBytes: 1024 };
  const headers = (over: Record<string, string> = {}) => ({ ":method": "POST", ":path": "/metal.infra.v1.BootService/Wait", "content-type": "application/grpc", ...over });
  const others = [
    headers({ ":method": "GET" }),
    headers({ ":path": "/metal.infra.v1.BootService/Boot" }),
    headers({ "content-type": "application/grpc+json" }),
    headers({ "content-type": "application/grpc-web+proto" }),
    headers({ "content-type": "application/proto" }),
    headers({ "grpc-encoding": "gzip" }),
  ];

  it("takes only POSTs of a listed path with a binary gRPC content type, uncompressed", () => {
    const take = lean.streamTaker(options);
    for (const h of others) expect(take({} as never, h), JSON.stringify(h)).toBe(false);
  });

  it("hands everything else, and a lean call over HTTP/1.1, to the fallback", () => {
    let fell = 0;
    const handler = lean.handler(() => fell++, options);
    for (const h of others) handler({ httpVersionMajor: 2, headers: h } as never, {} as never);
    handler({ httpVersionMajor: 1, headers: headers() } as never, {} as never);
    expect(fell).toBe(others.length + 1);
  });
});
