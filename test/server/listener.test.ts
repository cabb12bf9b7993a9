import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { VersionService } from "../../gen/metal/api/v1/version_pb.js";
import { type Listener, listen } from "../../server/http/listener.js";
import type { AppHandler, NodeHandler } from "../../server/http/node-handler.js";

const handler = connectNodeAdapter({
  routes: (router) => router.service(VersionService, { get: () => ({ version: { version: "9.9.9" } }) }),
});

const listeners: Listener[] = [];
afterAll(async () => {
  await Promise.all(listeners.map((l) => l.close(100)));
});

describe("one port for every protocol", () => {
  it("serves Connect over HTTP/1.1, gRPC and gRPC-Web over h2c, on one plain port", async () => {
    const l = await listen(handler as never, "127.0.0.1:0");
    listeners.push(l);
    const viaH1 = createClient(VersionService, createConnectTransport({ baseUrl: l.url, httpVersion: "1.1" }));
    const viaGrpc = createClient(VersionService, createGrpcTransport({ baseUrl: l.url }));
    const viaGrpcWeb = createClient(VersionService, createGrpcWebTransport({ baseUrl: l.url, httpVersion: "2" }));
    const viaH2Connect = createClient(VersionService, createConnectTransport({ baseUrl: l.url, httpVersion: "2" }));
    for (const c of [viaH1, viaGrpc, viaGrpcWeb, viaH2Connect]) {
      expect((await c.get({})).version?.version).toBe("9.9.9");
    }
    const res = await fetch(`${l.url}/metal.api.v1.VersionService/Get`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(await res.json()).toEqual({ version: { version: "9.9.9" } });
  });

  it("serves TLS with ALPN choosing HTTP/2 or HTTP/1.1", async () => {
    const dir = mkdtempSync(join(tmpdir(), "metal-tls-"));
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    const l = await listen(handler as never, "127.0.0.1:0", { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") });
    listeners.push(l);
    expect(l.url).toMatch(/^https:/);
    const ca = readFileSync(join(dir, "cert.pem"));
    const grpc = createClient(VersionService, createGrpcTransport({ baseUrl: l.url, nodeOptions: { ca } }));
    expect((await grpc.get({})).version?.version).toBe("9.9.9");
    const h1 = createClient(VersionService, createConnectTransport({ baseUrl: l.url, httpVersion: "1.1", nodeOptions: { ca } }));
    expect((await h1.get({})).version?.version).toBe("9.9.9");
    // ALPN really negotiated h2 for an HTTP/2 client.
    const session = http2.connect(l.url, { ca });
    const alpn = await new Promise<string | false | undefined>((r) => session.once("connect", () => r(session.alpnProtocol)));
    session.close();
    expect(alpn).toBe("h2");
  });
});

describe("raw HTTP/2 streams first", () => {
  it("offers every h2c stream to the handler's stream taker and wraps the rest for the handler, as node:http2 would", async () => {
    const taken: string[] = [];
    const connect = connectNodeAdapter({ routes: (router) => router.service(VersionService, { get: () => ({ version: { version: "9.9.9" } }) }) });
    const app: AppHandler = Object.assign(connect as NodeHandler, {
      takeStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) {
        if (headers[":path"] !== "/raw") return false;
        taken.push(String(headers[":path"]));
        stream.respond({ ":status": 200 });
        stream.end("raw");
        return true;
      },
    });
    const l = await listen(app, "127.0.0.1:0");
    listeners.push(l);
    const session = http2.connect(l.url);
    const call = (headers: http2.OutgoingHttpHeaders, body?: string) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const s = session.request(headers);
        let status = 0;
        let text = "";
        s.on("response", (h) => (status = Number(h[":status"])));
        s.on("data", (d) => (text += d));
        s.on("end", () => resolve({ status, text }));
        s.on("error", reject);
        s.end(body);
      });
    try {
      expect(await call({ ":path": "/raw" })).toEqual({ status: 200, text: "raw" });
      // Not taken: Connect behind the compatibility wrapper, also when the client expects 100-continue.
      for (const extra of [{}, { expect: "100-continue" }]) {
        const r = await call({ ":method": "POST", ":path": "/metal.api.v1.VersionService/Get", "content-type": "application/json", ...extra }, "{}");
        expect(r.status).toBe(200);
        expect(JSON.parse(r.text)).toEqual({ version: { version: "9.9.9" } });
      }
      expect((await call({ ":method": "POST", ":path": "/x", expect: "something-else" })).status).toBe(417);
      expect(taken).toEqual(["/raw"]);
    } finally {
      session.close();
    }
    // gRPC clients work through it too.
    expect((await createClient(VersionService, createGrpcTransport({ baseUrl: l.url })).get({})).version?.version).toBe("9.9.9");
  });
});

describe("connection caps and HTTP/2 stream limits", () => {
  const limits = { headersTimeoutMs: 60_000, requestTimeoutMs: 60_000, idleTimeoutMs: 60_000, maxConnections: 4, maxConnectionsPerAddress: 2, http2MaxStreams: 3 };

  /** A keep-alive HTTP/1.1 connection from `localAddress` that got an answer (so the server holds it), or undefined when the server closed it unanswered. */
  function answered(l: Listener, localAddress: string): Promise<net.Socket | undefined> {
    const { port } = new URL(l.url);
    return new Promise((resolve) => {
      const s = net.connect({ port: Number(port), host: "127.0.0.1", localAddress }, () => s.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
      s.on("error", () => {});
      s.once("data", () => resolve(s));
      s.once("close", () => resolve(undefined));
    });
  }

  it("closes connections over the per-address and the total cap on accept, and takes new ones once others closed", async () => {
    const l = await listen(handler as never, "127.0.0.1:0", undefined, limits);
    listeners.push(l);
    const a1 = await answered(l, "127.0.0.1");
    const a2 = await answered(l, "127.0.0.1");
    expect(a1 && a2).toBeTruthy();
    expect(await answered(l, "127.0.0.1")).toBeUndefined();
    const b1 = await answered(l, "127.0.0.2");
    const c1 = await answered(l, "127.0.0.3");
    expect(b1 && c1).toBeTruthy();
    expect(await answered(l, "127.0.0.4")).toBeUndefined();
    const closed = new Promise((r) => a1!.once("close", r));
    a1!.destroy();
    await closed;
    let again: net.Socket | undefined;
    for (let i = 0; i < 100 && !again; i++) again = await answered(l, "127.0.0.1");
    expect(again).toBeTruthy();
    for (const s of [a2, b1, c1, again]) s?.destroy();
  });

  it("tells HTTP/2 clients how many streams a connection may open (nghttp2 refuses more)", async () => {
    const l = await listen(handler as never, "127.0.0.1:0", undefined, limits);
    listeners.push(l);
    const session = http2.connect(l.url);
    session.on("error", () => {});
    await new Promise<void>((r) => session.once("remoteSettings", () => r()));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(3);
    session.close();
  });
});
