import { randomUUID } from "node:crypto";
import { once } from "node:events";
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { type MachineProxy, startMachineProxy } from "../../edge/core/machine-proxy.js";
import { TcpProxy } from "../../edge/lab/tcp-proxy.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { FilesystemLayoutService } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageService, ImageServiceGetRequestSchema } from "../../gen/metal/api/v1/image_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";
import { HammerSide, RecordingUpstream, randomMac, s1Hardware, waitForAllocation } from "./machine-endpoint-helpers.js";

let server: TestServer;
let fixture: PartitionFixture;
/** Between the proxy and the server: counts the proxy's upstream connections. */
let tcp: TcpProxy;
let proxy: MachineProxy;
let hammers: HammerSide;
let tenant: Client<typeof MachineService>;
const aborts: AbortController[] = [];
const closers: (() => Promise<void> | void)[] = [];

const upstreamConnections = () => [...tcp.handed.values()].reduce((a, b) => a + b, 0);

/** The error a promise rejects with, as a ConnectError. */
async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

/** An ImageService.Get as raw HTTP/2 with the headers given (gRPC's by default); resolves with the response's headers and trailers. */
function rawCall(session: http2.ClientHttp2Session, extra: http2.OutgoingHttpHeaders): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders }> {
  const req = session.request({ ":method": "POST", ":path": "/metal.api.v1.ImageService/Get", "content-type": "application/grpc", te: "trailers", ...extra });
  const message = toBinary(ImageServiceGetRequestSchema, create(ImageServiceGetRequestSchema, { id: "debian-12" }));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return new Promise((resolve, reject) => {
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => (headers = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("error", reject);
    req.on("close", () => resolve({ headers, trailers }));
    req.resume();
    // A GET has ended its request with its headers already.
    if (extra[":method"] !== "GET") req.end(frame);
  });
}

/** Pixie's part: the partition's boot answer for a MAC, with the machine's own credential. */
async function bootCredential(mac: string, uuid: string): Promise<string> {
  const res = await server.grpcClient(BootService, fixture.infraToken).boot({ partition: "p1", mac, uuid });
  expect(res.machineId).toBe(uuid);
  expect(res.machineCredential).not.toBe("");
  return res.machineCredential;
}

const isWaiting = (id: string) => async () => (await server.client(AdminMachineService, server.adminToken).get({ id })).machine?.waiting;

/** Registers a machine through the proxy and holds its Wait open, as metal-hammer does; returns the allocation promise. */
async function registerAndWait(token: string, id: string, mac: string, side = hammers): Promise<{ allocation: Promise<unknown>; abort: AbortController }> {
  if (side !== hammers) closers.push(() => side.close());
  const boot = side.client(BootService, token);
  const events = side.client(EventService, token);
  await events.send({ partition: "p1", events: [{ machineId: id, type: T.PREPARING }] });
  const reg = await boot.register({ partition: "p1", machineId: id, hardware: s1Hardware(mac) });
  expect(reg.size).toBe("s1");
  await events.send({ partition: "p1", events: [T.REGISTERING, T.WAITING].map((type) => ({ machineId: id, type })) });
  const abort = new AbortController();
  aborts.push(abort);
  const allocation = waitForAllocation(boot, id, abort.signal);
  allocation.catch(() => {});
  await eventually(`machine ${id} to wait`, isWaiting(id));
  return { allocation, abort };
}

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 200, leaseMs: scaled(15_000), recheckMs: 1_000 } });
  fixture = await setUpPartition(server);
  tcp = await TcpProxy.listen("127.0.0.1:0", [new URL(server.url).host]);
  proxy = await startMachineProxy({ upstreamUrl: `http://${tcp.address}`, listen: "127.0.0.1:0" });
  hammers = new HammerSide(proxy.endpoint);
  const editor = (await server.client(AdminTokens, server.adminToken).create({ subject: "ed", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  tenant = server.client(MachineService, editor);
});

afterAll(async () => {
  for (const a of aborts) a.abort();
  hammers?.close();
  for (const c of closers) await c();
  await proxy?.close();
  await tcp?.close();
  fixture?.stopAll();
});

describe("metal-core's machine endpoint forwards metal-hammer's calls", () => {
  it("serves a machine with its own credential: events, Register, image and layout, Wait until a tenant allocates it, InstallationSucceeded", async () => {
    const id = randomUUID();
    const mac = randomMac();
    const credential = await bootCredential(mac, id);
    await server.grpcClient(BootService, fixture.infraToken).dhcp({ partition: "p1", machineId: id });
    const { allocation } = await registerAndWait(credential, id, mac);

    const image = await hammers.client(ImageService, credential).get({ id: "debian-12" });
    expect(image.image?.id).toBe("debian-12.0.20250101");
    const layout = await hammers.client(FilesystemLayoutService, credential).get({ id: "s1-default" });
    expect(layout.filesystemLayout?.disks[0]?.device).toBe("/dev/sda");

    await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "through-core", networks: [fixture.primary.pb], machineId: id });
    const alloc = (await allocation) as { project: string; image: string } | undefined;
    expect(alloc).toMatchObject({ project: "pb" });

    const events = hammers.client(EventService, credential);
    await events.send({ partition: "p1", events: [T.INSTALLING, T.BOOTING_NEW_KERNEL].map((type) => ({ machineId: id, type })) });
    const bootInfo = { imageId: "debian-12.0.20250101", primaryDisk: "/dev/sda", osPartition: "/dev/sda2", kernel: "/boot/vmlinuz", initrd: "/boot/initrd", cmdline: "root=/dev/sda2", bootloaderId: "debian" };
    const boot = hammers.client(BootService, credential);
    await boot.installationSucceeded({ partition: "p1", machineId: id, consolePassword: "pw", bootInfo });
    const machine = (await server.client(AdminMachineService, server.adminToken).get({ id })).machine!;
    expect(machine.allocation?.project).toBe("pb");

    // The installation voided the credential: the control plane's refusal reaches the machine as it is.
    const voided = await failure(boot.register({ partition: "p1", machineId: id, hardware: s1Hardware(mac) }));
    expect(voided.code).toBe(Code.Unauthenticated);
    expect(voided.rawMessage).toMatch(/void/);
    // Repeating InstallationSucceeded is still allowed with it (idempotent).
    await boot.installationSucceeded({ partition: "p1", machineId: id, consolePassword: "pw", bootInfo });
  });

  it("serves a machine holding the partition's infra token too; a Register with 128 NICs fits", async () => {
    const id = randomUUID();
    const boot = hammers.client(BootService, fixture.infraToken);
    const reg = await boot.register({ partition: "p1", machineId: id, hardware: s1Hardware(randomMac(), 126) });
    expect(reg.rack).toBe("r1");
    const stored = (await server.client(AdminMachineService, server.adminToken).get({ id })).machine!;
    expect(stored.hardware?.nics).toHaveLength(128);
  });

  it("speaks gRPC only: gRPC-Web and Connect get HTTP 415", async () => {
    const raw = http2.connect(`http://${proxy.endpoint}`);
    raw.on("error", () => {});
    try {
      for (const contentType of ["application/grpc-web+proto", "application/proto", "application/json"]) {
        const res = await rawCall(raw, { "content-type": contentType, authorization: `Bearer ${fixture.infraToken}` });
        expect(res.headers[":status"], contentType).toBe(415);
      }
      const get = await rawCall(raw, { ":method": "GET", "content-type": "application/grpc", authorization: `Bearer ${fixture.infraToken}` });
      expect(get.headers[":status"]).toBe(405);
    } finally {
      raw.close();
    }
  });

  it("lends no token of its own: machine X's credential cannot act for machine Y", async () => {
    const x = randomUUID();
    const y = randomUUID();
    const mac = randomMac();
    const credential = await bootCredential(mac, x);
    const boot = hammers.client(BootService, credential);
    const denied = await failure(boot.register({ partition: "p1", machineId: y, hardware: s1Hardware(mac) }));
    expect(denied.code).toBe(Code.PermissionDenied);
    const waitDenied = await failure(waitForAllocation(boot, y));
    expect(waitDenied.code).toBe(Code.PermissionDenied);
    const sendDenied = await failure(hammers.client(EventService, credential).send({ partition: "p1", events: [{ machineId: y, type: T.PREPARING }] }));
    expect(sendDenied.code).toBe(Code.PermissionDenied);
  });

  it("passes the control plane's errors on with their code and message", async () => {
    const id = randomUUID();
    const mac = randomMac();
    const credential = await bootCredential(mac, id);
    const bad = { partition: "p1", machineId: id, hardware: { ...s1Hardware(mac), cpus: [] } };
    const direct = await failure(server.grpcClient(BootService, credential).register(bad));
    const proxied = await failure(hammers.client(BootService, credential).register(bad));
    expect(direct.code).toBe(Code.InvalidArgument);
    expect([proxied.code, proxied.rawMessage]).toEqual([direct.code, direct.rawMessage]);
    // A stream that fails upstream fails the machine's stream alike.
    const unknown = randomUUID();
    const directWait = await failure(waitForAllocation(server.grpcClient(BootService, fixture.infraToken), unknown));
    const proxiedWait = await failure(waitForAllocation(hammers.client(BootService, fixture.infraToken), unknown));
    expect([Code.NotFound, Code.FailedPrecondition]).toContain(directWait.code);
    expect([proxiedWait.code, proxiedWait.rawMessage]).toEqual([directWait.code, directWait.rawMessage]);
  });

  it("carries many machines' Wait streams on one upstream HTTP/2 connection", async () => {
    const machines = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const id = randomUUID();
        const mac = randomMac();
        // Half with their own credential, half with the infra token; each on a connection of its own.
        const token = i % 2 === 0 ? await bootCredential(mac, id) : fixture.infraToken;
        return { id, ...(await registerAndWait(token, id, mac, new HammerSide(proxy.endpoint))) };
      }),
    );
    for (const m of machines) expect(await isWaiting(m.id)()).toBe(true);
    expect(upstreamConnections()).toBe(1);
    // The machine going away ends its upstream stream: the control plane stops counting it as waiting.
    machines[0]!.abort.abort();
    await eventually("the abandoned Wait to end upstream", async () => !(await isWaiting(machines[0]!.id)()));
    expect(upstreamConnections()).toBe(1);
  });
});

describe("what the machine endpoint refuses by itself", () => {
  /** The control plane behind a stand-in that records every stream the proxy forwards, with its headers. */
  let recorder: RecordingUpstream;
  let guarded: MachineProxy;
  let side: HammerSide;
  const forwardedPaths = () => recorder.received.map((r) => r.headers[":path"]);

  beforeAll(async () => {
    recorder = await RecordingUpstream.start(server.url);
    guarded = await startMachineProxy({ upstreamUrl: recorder.url, listen: "127.0.0.1:0", limits: { readMaxBytes: 64 * 1024 } });
    side = new HammerSide(guarded.endpoint);
    closers.push(
      () => side.close(),
      () => guarded.close(),
      () => recorder.close(),
    );
  });

  it("forwards the machine's Authorization header unchanged and only gRPC's headers; passes back only gRPC's", async () => {
    const raw = http2.connect(`http://${guarded.endpoint}`);
    raw.on("error", () => {});
    const res = await rawCall(raw, {
      authorization: `Bearer ${fixture.infraToken}`,
      "grpc-timeout": "5S",
      "user-agent": "metal-hammer",
      cookie: "session=1",
      "x-forwarded-for": "10.0.0.1",
      "x-machine-metadata": "anything",
      "x-tenant": "pb",
    });
    raw.close();
    expect(res.trailers["grpc-status"] ?? res.headers["grpc-status"]).toBe("0");
    expect(recorder.received).toHaveLength(1);
    const sent = recorder.received[0]!.headers;
    expect(sent.authorization).toBe(`Bearer ${fixture.infraToken}`);
    expect(
      Object.keys(sent)
        .filter((k) => !k.startsWith(":"))
        .sort(),
    ).toEqual(["authorization", "content-type", "grpc-timeout", "te", "user-agent"]);
    expect(sent[":path"]).toBe("/metal.api.v1.ImageService/Get");
    // The stand-in's own response header and trailer stay on the control plane's side.
    expect(res.headers["x-internal-host"]).toBeUndefined();
    expect(res.trailers["x-internal-trace"]).toBeUndefined();
    // The answer is the control plane's, whole.
    const image = await side.client(ImageService, fixture.infraToken).get({ id: "debian-12" });
    expect(image.image?.id).toBe("debian-12.0.20250101");
    recorder.received.length = 0;
  });

  it("refuses a call without a bearer credential with Unauthenticated, before forwarding it", async () => {
    const none = await failure(side.client(BootService).register({ partition: "p1", machineId: randomUUID(), hardware: s1Hardware(randomMac()) }));
    expect(none.code).toBe(Code.Unauthenticated);
    const noneWait = await failure(waitForAllocation(side.client(BootService), randomUUID()));
    expect(noneWait.code).toBe(Code.Unauthenticated);
    const basic: Interceptor = (next) => (req) => (req.header.set("authorization", "Basic dXNlcjpwdw=="), next(req));
    const basicClient = createClient(ImageService, createTransport({ baseUrl: `http://${guarded.endpoint}`, interceptors: [basic] }));
    expect((await failure(basicClient.get({ id: "debian-12" }))).code).toBe(Code.Unauthenticated);
    expect(forwardedPaths()).toEqual([]);
  });

  it("answers Unimplemented for pixie's methods and everything else that is not metal-hammer's", async () => {
    const boot = side.client(BootService, fixture.infraToken);
    expect((await failure(boot.boot({ partition: "p1", mac: randomMac(), uuid: randomUUID() }))).code).toBe(Code.Unimplemented);
    expect((await failure(boot.dhcp({ partition: "p1", machineId: randomUUID() }))).code).toBe(Code.Unimplemented);
    expect((await failure(side.client(ImageService, fixture.infraToken).list({}))).code).toBe(Code.Unimplemented);
    expect((await failure(side.client(AdminMachineService, server.adminToken).get({ id: randomUUID() }))).code).toBe(Code.Unimplemented);
    expect(forwardedPaths()).toEqual([]);
  });

  it("refuses a request over readMaxBytes with ResourceExhausted, before forwarding it", async () => {
    const big = { partition: "p1", machineId: randomUUID(), hardware: s1Hardware(randomMac()), bios: { vendor: "x".repeat(65 * 1024) } };
    const refused = await failure(side.client(BootService, fixture.infraToken).register(big));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(forwardedPaths()).toEqual([]);
  });

  it("ends a machine's Wait with Unavailable when the control plane is lost under it", async () => {
    const id = randomUUID();
    const mac = randomMac();
    await server.grpcClient(BootService, fixture.infraToken).register({ partition: "p1", machineId: id, hardware: s1Hardware(mac) });
    const waiting = failure(waitForAllocation(side.client(BootService, fixture.infraToken), id));
    await eventually("the Wait to reach the control plane", async () => recorder.received.some((r) => r.headers[":path"] === "/metal.infra.v1.BootService/Wait" && r.complete));
    recorder.cut();
    expect((await waiting).code).toBe(Code.Unavailable);
    // The next call dials the control plane anew.
    const image = await eventually("the proxy to reconnect", async () => (await side.client(ImageService, fixture.infraToken).get({ id: "debian-12" })).image);
    expect(image.id).toBe("debian-12.0.20250101");
    recorder.received.length = 0;
  });

  it("answers Unavailable when the control plane cannot be reached", async () => {
    const nowhere = await startMachineProxy({ upstreamUrl: "http://127.0.0.1:1", listen: "127.0.0.1:0" });
    const lost = new HammerSide(nowhere.endpoint);
    closers.push(
      () => lost.close(),
      () => nowhere.close(),
    );
    expect((await failure(lost.client(ImageService, fixture.infraToken).get({ id: "debian-12" }))).code).toBe(Code.Unavailable);
    expect((await failure(waitForAllocation(lost.client(BootService, fixture.infraToken), randomUUID()))).code).toBe(Code.Unavailable);
  });

  it("advertises its stream and header limits, cuts connections over its cap and closes idle ones", async () => {
    const capped = await startMachineProxy({ upstreamUrl: server.url, listen: "127.0.0.1:0", limits: { maxConnections: 1, idleTimeoutMs: 200, maxStreamsPerConnection: 4 } });
    closers.push(() => capped.close());
    const first = http2.connect(`http://${capped.endpoint}`);
    first.on("error", () => {});
    await once(first, "remoteSettings");
    expect(first.remoteSettings.maxConcurrentStreams).toBe(4);
    expect(first.remoteSettings.maxHeaderListSize).toBe(16 * 1024);
    // The cap is full: a second connection is cut on accept.
    const second = http2.connect(`http://${capped.endpoint}`);
    second.on("error", () => {});
    await once(second, "close");
    expect(first.closed || first.destroyed).toBe(false);
    // The first holds no stream: it is closed once idle.
    await once(first, "close");
    // Its slot is free again.
    const image = await new HammerSide(capped.endpoint).client(ImageService, fixture.infraToken).get({ id: "debian-12" });
    expect(image.image?.id).toBe("debian-12.0.20250101");
  });
});

describe("the machine endpoint's stream caps", () => {
  it("refuses a stream over the address's share with Unavailable, and takes it once a slot is free", async () => {
    const capped = await startMachineProxy({ upstreamUrl: server.url, listen: "127.0.0.1:0", limits: { maxStreamsPerAddress: 1 } });
    const side = new HammerSide(capped.endpoint);
    closers.push(
      () => side.close(),
      () => capped.close(),
    );
    // A request that never sends its body holds its slot.
    const raw = http2.connect(`http://${capped.endpoint}`);
    raw.on("error", () => {});
    const held = raw.request({ ":method": "POST", ":path": "/metal.api.v1.ImageService/Get", "content-type": "application/grpc", authorization: `Bearer ${fixture.infraToken}` });
    held.on("error", () => {});
    await once(held, "ready");
    const images = side.client(ImageService, fixture.infraToken);
    await eventually("the held stream to take the slot", async () => (await failure(images.get({ id: "debian-12" }))).code === Code.Unavailable);
    held.close();
    const image = await eventually("the slot to be free again", async () => (await images.get({ id: "debian-12" })).image);
    expect(image.id).toBe("debian-12.0.20250101");
    raw.close();
  });
});

describe("closing the machine endpoint", () => {
  it("ends the open Wait streams at once with Unavailable and stops listening", async () => {
    const closing = await startMachineProxy({ upstreamUrl: server.url, listen: "127.0.0.1:0" });
    const side = new HammerSide(closing.endpoint);
    closers.push(() => side.close());
    const id = randomUUID();
    const mac = randomMac();
    const credential = await bootCredential(mac, id);
    const boot = side.client(BootService, credential);
    await side.client(EventService, credential).send({ partition: "p1", events: [{ machineId: id, type: T.PREPARING }] });
    await boot.register({ partition: "p1", machineId: id, hardware: s1Hardware(mac) });
    await side.client(EventService, credential).send({ partition: "p1", events: [T.REGISTERING, T.WAITING].map((type) => ({ machineId: id, type })) });
    const waiting = failure(waitForAllocation(boot, id));
    await eventually("the machine to wait", isWaiting(id));
    await closing.close();
    const ended = await waiting;
    expect(ended.code).toBe(Code.Unavailable);
    const after = await failure(side.client(ImageService, credential).get({ id: "debian-12" }));
    expect(after.code).toBe(Code.Unavailable);
    await eventually("the control plane to see the Wait end", async () => !(await isWaiting(id)()));
  });
});
