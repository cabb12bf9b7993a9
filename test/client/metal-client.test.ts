import { Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { createMetalClient, type MetalClient, type MetalClientOptions } from "../../client/index.js";
import { createMetalClient as createWebMetalClient, type WebMetalClientOptions } from "../../client/web.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/** The package's clients against the whole control plane, in every protocol each entry speaks. */
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});

/** `wire`: the content type the protocol sends, as the server sees it. */
type Way = { name: string; wire: string } & ({ entry: "node"; opts: Omit<MetalClientOptions, "baseUrl"> } | { entry: "web"; opts: Omit<WebMetalClientOptions, "baseUrl"> });

const WAYS: Way[] = [
  { name: "node connect (HTTP/1.1, JSON)", wire: "application/json", entry: "node", opts: {} },
  { name: "node connect (HTTP/2, binary)", wire: "application/proto", entry: "node", opts: { httpVersion: "2", binary: true } },
  { name: "node grpc", wire: "application/grpc+proto", entry: "node", opts: { protocol: "grpc" } },
  { name: "node grpc-web (HTTP/1.1)", wire: "application/grpc-web+proto", entry: "node", opts: { protocol: "grpc-web" } },
  { name: "node grpc-web (HTTP/2)", wire: "application/grpc-web+proto", entry: "node", opts: { protocol: "grpc-web", httpVersion: "2" } },
  // connect-web on Node's fetch: the browser entry's code path without a browser.
  { name: "web connect", wire: "application/json", entry: "web", opts: {} },
  { name: "web connect (binary)", wire: "application/proto", entry: "web", opts: { binary: true } },
  { name: "web grpc-web", wire: "application/grpc-web+proto", entry: "web", opts: { protocol: "grpc-web" } },
];

function client(way: Way, extra: Partial<WebMetalClientOptions> = {}): MetalClient & { close(): void } {
  const opts = { baseUrl: server.url, ...way.opts, ...extra };
  if (way.entry === "node") return createMetalClient(opts as MetalClientOptions);
  return { ...createWebMetalClient(opts as WebMetalClientOptions), close: () => {} };
}

describe("createMetalClient against the control plane", () => {
  it.each(WAYS)("$name: typed clients of api and admin read and write with the token", async (way) => {
    const sent: (string | null)[] = [];
    const metal = client(way, { token: server.adminToken, interceptors: [(next) => (req) => (sent.push(req.header.get("content-type")), next(req))] });
    try {
      const id = `p-${way.name.replace(/[^a-z0-9]+/g, "-").replace(/-$/, "")}`;
      await metal.admin.partition.create({ id, name: way.name });
      const { partitions } = await metal.api.partition.list({});
      expect(partitions.map((p) => p.id)).toContain(id);
      expect((await metal.api.partition.get({ id })).partition?.name).toBe(way.name);
      expect((await metal.api.user.get({})).user?.subject).toBeTruthy();
      expect(new Set(sent)).toEqual(new Set([way.wire]));
    } finally {
      metal.close();
    }
  });

  it.each(WAYS)("$name: errors are ConnectError with the server's code", async (way) => {
    const metal = client(way, { token: server.adminToken });
    try {
      const missing = await metal.api.partition.get({ id: "no-such-partition" }).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(ConnectError);
      expect((missing as ConnectError).code).toBe(Code.NotFound);
      const anonymous = client(way);
      const refused = await anonymous.api.partition.list({}).catch((e: unknown) => e);
      anonymous.close();
      expect(refused).toBeInstanceOf(ConnectError);
      expect((refused as ConnectError).code).toBe(Code.Unauthenticated);
    } finally {
      metal.close();
    }
  });

  it.each(WAYS.filter((w) => w.name === "node grpc" || w.name === "web grpc-web" || w.name === "node connect (HTTP/1.1, JSON)"))(
    "$name: a token provider is asked on every call, so a rotated token counts from the next call on",
    async (way) => {
      let asked = 0;
      let current: string | undefined = "not-a-token";
      const metal = client(way, {
        tokenProvider: async () => {
          asked++;
          return current;
        },
      });
      try {
        await expect(metal.api.user.get({})).rejects.toMatchObject({ code: Code.Unauthenticated });
        current = server.adminToken;
        await metal.api.user.get({});
        await metal.api.partition.list({});
        expect(asked).toBe(3);
        current = undefined;
        await expect(metal.api.user.get({})).rejects.toMatchObject({ code: Code.Unauthenticated });
        expect(asked).toBe(4);
      } finally {
        metal.close();
      }
    },
  );

  it("refuses a token and a token provider together", () => {
    expect(() => createMetalClient({ baseUrl: server.url, token: "a", tokenProvider: () => "b" })).toThrow(/either token or tokenProvider/);
  });

  it("makes each service's client on first use and keeps it", () => {
    const metal = createMetalClient({ baseUrl: server.url });
    expect(metal.api.machine).toBe(metal.api.machine);
    expect(Object.keys(metal)).toEqual(["api", "admin", "infra", "masterdata", "transport", "close"]);
    expect(Object.keys(metal.masterdata)).toEqual(["invitation", "membership", "project", "projectMember", "tenant", "tenantMember"]);
  });
});
