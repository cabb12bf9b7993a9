import { readdirSync } from "node:fs";
import { connect } from "node:http2";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { create, type DescField, type DescMessage, type DescMethod, type DescService, ScalarType } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { permissionOf } from "../../server/auth/permissions.js";
import { isMachineOnly } from "../../server/domain/authorize.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Issue 12, item 13: a NUL character in any string of any request is refused
 * with InvalidArgument naming the field, never Internal. The requests are made
 * from the descriptors of every service of the four packages, one per string
 * field path reachable in the request (nested messages, repeated, map keys
 * and values, oneofs; nesting bounded), so a field added later is covered
 * without touching this test.
 */

const PACKAGES = ["metal/api/v1", "metal/admin/v1", "metal/infra/v1", "masterdata/v1"];
const MAX_DEPTH = 4;
const BAD = "a\u0000b";
/** Other control characters get the same answer, with their own words (tab, line feed and carriage return are text). */
const CONTROLS = ["a\u0001b", "a\u001bb", "a\u007fb"];

/** Every service generated for the packages, found by reading gen/. */
async function allServices(): Promise<DescService[]> {
  const out: DescService[] = [];
  for (const pkg of PACKAGES) {
    const dir = join(import.meta.dirname, "../../gen", pkg);
    for (const file of readdirSync(dir).filter((f) => f.endsWith("_pb.ts"))) {
      const mod = (await import(pathToFileURL(join(dir, file)).href)) as Record<string, unknown>;
      for (const v of Object.values(mod)) if ((v as DescService)?.kind === "service") out.push(v as DescService);
    }
  }
  return out;
}

/** One request to send: the path of the field holding the NUL and the message's init shape. */
interface Variant {
  path: string;
  init: Record<string, unknown>;
}

/** A harmless value for a map entry's other half. */
function plainValue(f: DescField & { fieldKind: "map" }): unknown {
  if (f.mapKind === "message") return {};
  if (f.mapKind === "enum") return 0;
  switch (f.scalar) {
    case ScalarType.STRING:
      return "v";
    case ScalarType.BOOL:
      return false;
    case ScalarType.BYTES:
      return new Uint8Array();
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 0n;
    default:
      return 0;
  }
}

/** Sets `value` as field `f` of an init shape, through its oneof when it has one. */
function withField(f: DescField, value: unknown): Record<string, unknown> {
  return f.oneof ? { [f.oneof.localName]: { case: f.localName, value } } : { [f.localName]: value };
}

/** Every way to put a NUL (or `bad`) into one string of a message of type `desc`. */
function variants(desc: DescMessage, depth = 0, BAD_VALUE = BAD): Variant[] {
  const BAD = BAD_VALUE;
  if (depth > MAX_DEPTH) return [];
  const out: Variant[] = [];
  const nested = (m: DescMessage, path: string, wrap: (init: Record<string, unknown>) => unknown, f: DescField) => {
    for (const v of variants(m, depth + 1, BAD)) out.push({ path: `${path}.${v.path}`, init: withField(f, wrap(v.init)) });
  };
  for (const f of desc.fields) {
    switch (f.fieldKind) {
      case "scalar":
        if (f.scalar === ScalarType.STRING) out.push({ path: f.name, init: withField(f, BAD) });
        break;
      case "message":
        nested(f.message, f.name, (init) => init, f);
        break;
      case "list":
        if (f.listKind === "scalar" && f.scalar === ScalarType.STRING) out.push({ path: `${f.name}[0]`, init: withField(f, [BAD]) });
        if (f.listKind === "message") nested(f.message, `${f.name}[0]`, (init) => [init], f);
        break;
      case "map":
        if (f.mapKey === ScalarType.STRING) out.push({ path: `${f.name} key`, init: withField(f, { [BAD]: plainValue(f) }) });
        if (f.mapKind === "scalar" && f.scalar === ScalarType.STRING) out.push({ path: `${f.name}["k"]`, init: withField(f, { k: BAD }) });
        if (f.mapKind === "message") nested(f.message, `${f.name}["k"]`, (init) => ({ k: init }), f);
        break;
      case "enum":
        break;
    }
  }
  return out;
}

/** What the call answered: its code, or "OK" when it succeeded. */
async function outcome(client: Client<DescService>, method: DescMethod, message: unknown): Promise<{ code: string; message: string }> {
  const fn = (client as Record<string, (...a: unknown[]) => unknown>)[method.localName]!;
  try {
    if (method.methodKind === "unary") {
      await fn(message);
    } else if (method.methodKind === "server_streaming") {
      for await (const _ of fn(message) as AsyncIterable<unknown>);
    } else {
      // Client and bidi streams: one message, the stream held open until the server answers.
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      async function* requests() {
        yield message;
        await held;
      }
      try {
        for await (const _ of fn(requests()) as AsyncIterable<unknown>);
      } finally {
        release();
      }
    }
    return { code: "OK", message: "" };
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: Code[ce.code], message: ce.rawMessage };
  }
}

/** A protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** One gRPC call over h2c with a raw, already framed body; resolves to its grpc-status. */
async function grpcCall(path: string, framed: Uint8Array, token: string): Promise<string> {
  const session = connect(server.url);
  try {
    return await new Promise<string>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": `/${path}`, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}` });
      let status: string | undefined;
      stream.on("response", (h) => (status = (h["grpc-status"] as string | undefined) ?? status));
      stream.on("trailers", (t) => (status = (t["grpc-status"] as string | undefined) ?? status));
      stream.on("data", () => {});
      stream.on("end", () => resolve(status ?? "none"));
      stream.on("error", reject);
      stream.end(framed);
    });
  } finally {
    session.close();
  }
}

let server: TestServer;
let infraToken: string;
let services: DescService[];

beforeAll(async () => {
  server = await startTestServer();
  services = await allServices();
  await server.client(AdminPartitions, server.adminToken).create({ id: "p1" });
  infraToken = (await server.client(AdminTokens, server.adminToken).create({ subject: "p1-agents", roles: { infraPartition: "p1" } })).secret;
});

const isInfra = (s: DescService) => s.typeName.startsWith("metal.infra.v1.");
const isStream = (m: DescMethod) => m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming";

describe("NUL characters in requests (issue 12, item 13)", () => {
  it("the generated requests cover every service of the four packages, with hundreds of string paths", () => {
    expect(services.map((s) => s.typeName)).toEqual(expect.arrayContaining(["metal.api.v1.MachineService", "metal.admin.v1.MachineService", "metal.infra.v1.BMCService", "masterdata.v1.ProjectService"]));
    const paths = services.flatMap((s) => s.methods.flatMap((m) => variants(m.input).map((v) => `${m.parent.typeName}/${m.name} ${v.path}`)));
    expect(paths.length).toBeGreaterThan(300);
    // The fields the issue names.
    expect(paths).toEqual(expect.arrayContaining(["metal.api.v1.MachineService/Create user_data", "metal.infra.v1.BootService/InstallationSucceeded boot_info.cmdline"]));
    expect(paths.some((p) => p.startsWith("metal.infra.v1.BMCService/Session ") && p.includes("fru"))).toBe(true);
  });

  it.each([{ bad: BAD, words: "must not contain NUL characters" }, ...CONTROLS.map((bad) => ({ bad, words: "must not contain control characters" }))])(
    "every method refuses $bad in any string field with InvalidArgument naming the field (operator admin token)",
    async ({ bad, words }) => {
      const wrong: string[] = [];
      let calls = 0;
      for (const service of services) {
        // Client and bidi streams need HTTP/2; everything else goes over the Connect protocol as curl would send it.
        const connect = server.client(service, server.adminToken) as Client<DescService>;
        const grpc = server.grpcClient(service, server.adminToken) as Client<DescService>;
        // Methods for machine credentials alone refuse the admin token before reading the request.
        for (const method of service.methods.filter((m) => !isMachineOnly(permissionOf(m)))) {
          for (const v of variants(method.input, 0, bad)) {
            const sent = create(method.input, v.init as never);
            const got = await outcome(isStream(method) ? grpc : connect, method, sent);
            calls++;
            const leaf = v.path
              .replace(/\[.*?\]/g, "")
              .replace(/ key$/, "")
              .split(".")
              .pop()!;
            if (got.code !== "InvalidArgument" || !got.message.includes(words) || !got.message.includes(leaf)) {
              wrong.push(`${service.typeName}/${method.name} ${v.path}: ${got.code} ${got.message}`);
            }
          }
        }
      }
      expect(wrong).toEqual([]);
      expect(calls).toBeGreaterThan(300);
    },
    scaled(180_000),
  );

  it(
    "every unary method refuses a binary message whose string is not UTF-8 with InvalidArgument, over Connect and gRPC",
    async () => {
      const wrong: string[] = [];
      let calls = 0;
      for (const service of services) {
        for (const method of service.methods.filter((m) => m.methodKind === "unary")) {
          const field = method.input.fields.find((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);
          if (!field) continue;
          // Field `field.number`, wire type 2 (length-delimited): "a", a lone 0xff byte, "b".
          const body = new Uint8Array([...varint((field.number << 3) | 2), 3, 0x61, 0xff, 0x62]);
          calls++;
          const connect = await fetch(`${server.url}/${service.typeName}/${method.name}`, {
            method: "POST",
            headers: { "content-type": "application/proto", authorization: `Bearer ${server.adminToken}` },
            body,
          });
          const code = connect.headers.get("content-type")?.includes("json") ? ((await connect.json()) as { code?: string }).code : `HTTP ${connect.status}`;
          if (code !== "invalid_argument") wrong.push(`connect ${service.typeName}/${method.name} ${field.name}: ${code}`);
        }
      }
      // The lean gRPC path decodes Wait itself: the same answer.
      const framed = new Uint8Array([0, 0, 0, 0, 5, 0x12, 3, 0x61, 0xff, 0x62]);
      const res = await grpcCall("metal.infra.v1.BootService/Wait", framed, infraToken);
      if (res !== "3") wrong.push(`grpc BootService/Wait machine_id: grpc-status ${res}`);
      // Enveloped binary through Connect's own handler (gRPC unary), and a truncated message (a length past the end).
      const viaGrpc = await grpcCall("metal.api.v1.PartitionService/Get", new Uint8Array([0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0xff, 0x62]), server.adminToken);
      if (viaGrpc !== "3") wrong.push(`grpc PartitionService/Get id: grpc-status ${viaGrpc}`);
      const truncated = await fetch(`${server.url}/metal.api.v1.PartitionService/Get`, {
        method: "POST",
        headers: { "content-type": "application/proto", authorization: `Bearer ${server.adminToken}` },
        body: new Uint8Array([0x0a, 10, 0x61]),
      });
      const truncatedCode = ((await truncated.json()) as { code?: string }).code;
      if (truncatedCode !== "invalid_argument") wrong.push(`connect truncated PartitionService/Get: ${truncatedCode}`);
      expect(wrong).toEqual([]);
      expect(calls).toBeGreaterThan(50);
    },
    scaled(120_000),
  );

  it(
    "infra methods refuse it too with the partition's infra token (the partition field itself is the token's scope: refused by authorization first)",
    async () => {
      const wrong: string[] = [];
      for (const service of services.filter(isInfra)) {
        const connect = server.client(service, infraToken) as Client<DescService>;
        const grpc = server.grpcClient(service, infraToken) as Client<DescService>;
        // RenewCredential takes only a machine credential: an infra token never reaches its validation.
        for (const method of service.methods.filter((m) => permissionOf(m).infra)) {
          const hasPartition = method.input.fields.some((f) => f.name === "partition");
          for (const v of variants(method.input)) {
            const init = v.path === "partition" || !hasPartition ? v.init : { ...v.init, partition: "p1" };
            const got = await outcome(isStream(method) ? grpc : connect, method, create(method.input, init as never));
            const expected = v.path === "partition" ? "PermissionDenied" : "InvalidArgument";
            if (got.code !== expected) wrong.push(`${service.typeName}/${method.name} ${v.path}: ${got.code} ${got.message}`);
          }
        }
      }
      expect(wrong).toEqual([]);
    },
    scaled(120_000),
  );

  it("BootService.Wait over plain gRPC (the lean stream path) refuses it as well", async () => {
    const client = createClient(BootService, createTransport({ baseUrl: server.url, token: infraToken }));
    const got = await outcome(client as never, BootService.method.wait, { partition: "p1", machineId: `0000\u00000000-0000-0000-0000-000000000000` });
    expect(got).toEqual({ code: "InvalidArgument", message: "invalid request: machine_id: must not contain NUL characters" });
  });

  it("a later message of a bidi stream with a NUL ends the stream with InvalidArgument", async () => {
    const { BMCService } = await import("../../gen/metal/infra/v1/bmc_pb.js");
    const bmc = server.grpcClient(BMCService, infraToken);
    const field = BMCService.method.session.input;
    const first = create(field, { partition: "p1", kind: { case: "hello", value: { agent: "nul-test", version: "1" } } } as never);
    const second = create(field, {
      partition: "p1",
      kind: { case: "reports", value: { reports: [{ machineId: "00000000-0000-0000-0000-000000000001", address: "10.9.0.1:623", fru: { "board\u0000mfg": "x" } }] } },
    } as never);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    async function* requests() {
      yield first;
      yield second;
      await held;
    }
    let code = "OK";
    let text = "";
    try {
      for await (const _ of bmc.session(requests() as never));
    } catch (err) {
      code = Code[ConnectError.from(err).code];
      text = ConnectError.from(err).rawMessage;
    } finally {
      release();
    }
    expect(code).toBe("InvalidArgument");
    expect(text).toContain("reports.reports[0].fru key");
  });

  it("every List refuses a crafted page token whose key holds a NUL with InvalidArgument", async () => {
    const token = Buffer.from("k:a\u0000b", "utf8").toString("base64url");
    const wrong: string[] = [];
    let lists = 0;
    for (const service of services) {
      const client = server.client(service, server.adminToken) as Client<DescService>;
      for (const method of service.methods) {
        const paging = method.input.fields.find((f) => f.name === "paging" && f.fieldKind === "message");
        if (!paging || method.methodKind !== "unary") continue;
        lists++;
        const got = await outcome(client, method, create(method.input, { [paging.localName]: { pageToken: token } } as never));
        if (got.code !== "InvalidArgument" || !got.message.includes("paging.page_token")) wrong.push(`${service.typeName}/${method.name}: ${got.code} ${got.message}`);
      }
    }
    expect(lists).toBeGreaterThan(10);
    expect(wrong).toEqual([]);
  });
});
