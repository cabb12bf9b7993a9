import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createMetalClient, type MetalClient } from "../../client/index.js";
import { createMetalClient as createWebMetalClient } from "../../client/web.js";
import { PartitionService } from "../../gen/metal/admin/v1/partition_pb.js";

/**
 * A partition service that answers Unavailable (a restarting replica, a
 * proxy without a backend) to its first `failing` calls of each method, and
 * counts the calls that reached it over the wire.
 */
let failing = 0;
const reached = { list: 0, create: 0 };
const fail = (n: number) => {
  if (n <= failing) throw new ConnectError("injected: replica restarting", Code.Unavailable);
};
const routes = (router: ConnectRouter) =>
  router.service(PartitionService, {
    list: () => (fail(++reached.list), { partitions: [{ id: "p1" }] }),
    create: (req) => (fail(++reached.create), { partition: { id: req.id } }),
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
  for (const s of sessions) s.destroy();
  h1.closeAllConnections();
  await Promise.all([new Promise((r) => h2.close(r)), new Promise((r) => h1.close(r))]);
});

beforeEach(() => {
  failing = 0;
  reached.list = 0;
  reached.create = 0;
});

// Short waits: what is under test is whether a call is repeated, not how long the backoff is.
const FAST = { attempts: 3, policy: { initialMs: 1, maxMs: 4, jitter: 0 } };

const WAYS: { name: string; make: (retry: typeof FAST | false) => MetalClient & { close?: () => void } }[] = [
  { name: "node connect", make: (retry) => createMetalClient({ baseUrl: h1Url, retry }) },
  { name: "node grpc", make: (retry) => createMetalClient({ baseUrl: h2Url, protocol: "grpc", retry }) },
  { name: "node grpc-web", make: (retry) => createMetalClient({ baseUrl: h1Url, protocol: "grpc-web", retry }) },
  { name: "web connect", make: (retry) => createWebMetalClient({ baseUrl: h1Url, retry }) },
  { name: "web grpc-web", make: (retry) => createWebMetalClient({ baseUrl: h1Url, protocol: "grpc-web", retry }) },
];

describe.each(WAYS)("createMetalClient retries ($name)", ({ make }) => {
  it("repeats a read that met Unavailable, and the caller sees only the answer", async () => {
    const metal = make(FAST);
    failing = 2;
    expect((await metal.admin.partition.list({})).partitions.map((p) => p.id)).toEqual(["p1"]);
    expect(reached.list).toBe(3);
    metal.close?.();
  });

  it("gives up after the bounded attempts with the server's ConnectError", async () => {
    const metal = make(FAST);
    failing = 10;
    const err = await metal.admin.partition.list({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect(reached.list).toBe(3);
    metal.close?.();
  });

  it("never repeats a write: one that failed may have happened", async () => {
    const metal = make(FAST);
    failing = 1;
    await expect(metal.admin.partition.create({ id: "p2" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(reached.create).toBe(1);
    metal.close?.();
  });

  it("does not retry at all with retry: false", async () => {
    const metal = make(false);
    failing = 1;
    await expect(metal.admin.partition.list({})).rejects.toMatchObject({ code: Code.Unavailable });
    expect(reached.list).toBe(1);
    metal.close?.();
  });
});

describe("createMetalClient defaults", () => {
  it("retries reads without being asked", async () => {
    const metal = createMetalClient({ baseUrl: h1Url });
    failing = 1;
    await metal.admin.partition.list({});
    expect(reached.list).toBe(2);
  });
});
