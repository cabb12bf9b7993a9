import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { type ConnectRouter, createClient } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { VersionService } from "../../gen/metal/api/v1/version_pb.js";

/** VersionService.Get answering with the Authorization header it got and the protocol it was spoken in. */
const routes = (router: ConnectRouter) =>
  router.service(VersionService, {
    get: (_req, ctx) => ({ version: { version: ctx.requestHeader.get("authorization") ?? "none", revision: ctx.requestHeader.get("content-type") ?? "" } }),
  });

let h2: http2.Http2Server;
let h1: http.Server;
let h2Url = "";
let h1Url = "";
const sessions = new Set<http2.ServerHttp2Session>();

beforeAll(async () => {
  h2 = http2.createServer(connectNodeAdapter({ routes }));
  h2.on("session", (s) => sessions.add(s));
  h1 = http.createServer(connectNodeAdapter({ routes }));
  await Promise.all([new Promise<void>((r) => h2.listen(0, "127.0.0.1", r)), new Promise<void>((r) => h1.listen(0, "127.0.0.1", r))]);
  h2Url = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
  h1Url = `http://127.0.0.1:${(h1.address() as AddressInfo).port}`;
});

afterAll(async () => {
  // The clients keep their connections open; closing the servers waits for them otherwise.
  for (const s of sessions) s.destroy();
  h1.closeAllConnections();
  await Promise.all([new Promise((r) => h2.close(r)), new Promise((r) => h1.close(r))]);
});

describe("createTransport", () => {
  it("speaks gRPC over h2c by default and sends the bearer token", async () => {
    const client = createClient(VersionService, createTransport({ baseUrl: h2Url, token: "t1" }));
    const { version } = await client.get({});
    expect(version).toMatchObject({ version: "Bearer t1", revision: "application/grpc+proto" });
  });

  it("speaks the Connect protocol over HTTP/1.1, JSON or binary, asking a token provider on every call", async () => {
    let token: string | undefined = "first";
    const json = createClient(VersionService, createTransport({ baseUrl: h1Url, protocol: "connect", token: () => token }));
    expect((await json.get({})).version).toMatchObject({ version: "Bearer first", revision: "application/json" });
    token = "rotated";
    expect((await json.get({})).version?.version).toBe("Bearer rotated");
    token = undefined;
    expect((await json.get({})).version?.version).toBe("none");
    const binary = createClient(VersionService, createTransport({ baseUrl: h1Url, protocol: "connect", binary: true }));
    expect((await binary.get({})).version).toMatchObject({ version: "none", revision: "application/proto" });
  });

  it("speaks gRPC-Web over HTTP/1.1 or HTTP/2", async () => {
    for (const [baseUrl, httpVersion] of [
      [h1Url, "1.1"],
      [h2Url, "2"],
    ] as const) {
      const client = createClient(VersionService, createTransport({ baseUrl, protocol: "grpc-web", httpVersion, token: "t3" }));
      expect((await client.get({})).version).toMatchObject({ version: "Bearer t3", revision: "application/grpc-web+proto" });
    }
  });

  it("runs the caller's interceptors after the bearer one", async () => {
    const seen: (string | null)[] = [];
    const client = createClient(
      VersionService,
      createTransport({ baseUrl: h2Url, protocol: "connect", httpVersion: "2", token: async () => "t2", interceptors: [(next) => (req) => (seen.push(req.header.get("authorization")), next(req))] }),
    );
    expect((await client.get({})).version?.version).toBe("Bearer t2");
    expect(seen).toEqual(["Bearer t2"]);
  });
});
