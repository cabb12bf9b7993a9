import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { createTransport } from "../../client/transport.js";
import type { MachineAllocation } from "../../gen/metal/api/v1/machine_pb.js";
import type { BootService, MachineHardwareSchema } from "../../gen/metal/infra/v1/boot_pb.js";

const GiB = 2n ** 30n;

export type Wire = "grpc" | "grpc-web" | "connect";

/**
 * metal-hammer's side of a machine endpoint: clients in the protocol asked
 * for, with the token given, one connection per token and protocol (as one
 * hammer holds one); `close` ends every connection made.
 */
export class HammerSide {
  private readonly managers: Http2SessionManager[] = [];
  private readonly transports = new Map<string, Transport>();

  constructor(private readonly endpoint: string) {}

  transport(token?: string, wire: Wire = "grpc"): Transport {
    const key = `${wire} ${token ?? ""}`;
    let t = this.transports.get(key);
    if (!t) this.transports.set(key, (t = this.dial(token, wire)));
    return t;
  }

  private dial(token: string | undefined, wire: Wire): Transport {
    const baseUrl = `http://${this.endpoint}`;
    const manager = new Http2SessionManager(baseUrl);
    this.managers.push(manager);
    return createTransport({ baseUrl, protocol: wire, httpVersion: "2", binary: true, token, sessionManager: manager });
  }

  client<S extends DescService>(service: S, token?: string, wire: Wire = "grpc"): Client<S> {
    return createClient(service, this.transport(token, wire));
  }

  close(): void {
    for (const m of this.managers) m.abort();
  }
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** An s1 machine cabled to swp1 of leaf01 and leaf02 (the fixture's rack r1), the first NIC with `mac`, plus `extraNics` unconnected ones. */
export function s1Hardware(mac: string, extraNics = 0): MessageInitShape<typeof MachineHardwareSchema> {
  const nics: MessageInitShape<typeof MachineHardwareSchema>["nics"] = [
    { name: "eth0", mac, neighbors: [{ hostname: "leaf01", port: "swp1" }] },
    { name: "eth1", mac: randomMac(), neighbors: [{ hostname: "leaf02", port: "swp1" }] },
  ];
  for (let i = 0; i < extraNics; i++) nics.push({ name: `eth${i + 2}`, mac: randomMac() });
  return { memory: 16n * GiB, cpus: [{ model: "Xeon", cores: 4, threads: 8 }], disks: [{ name: "/dev/sda", size: 240_000_000_000n }], nics };
}

/** Holds a Wait open; resolves with the allocation, or rejects with the stream's error. */
export async function waitForAllocation(boot: Client<typeof BootService>, machineId: string, signal?: AbortSignal): Promise<MachineAllocation | undefined> {
  for await (const msg of boot.wait({ partition: "p1", machineId }, { signal })) if (msg.allocation) return msg.allocation;
  return undefined;
}

/** One stream as the upstream stand-in received it. */
export interface ReceivedStream {
  headers: http2.IncomingHttpHeaders;
  /** Request body bytes that arrived. */
  bytes: number;
  /** Whether the request arrived whole (END_STREAM), rather than being cancelled. */
  complete: boolean;
}

/**
 * A stand-in for the control plane in front of the real one: records every
 * stream it gets (headers as sent, body size, whether it came whole), adds a
 * response header and a trailer of its own that a machine must never see,
 * and forwards the rest to `target` on one connection. `cut()` destroys the
 * connections it was given (a control plane lost under open calls).
 */
export class RecordingUpstream {
  readonly received: ReceivedStream[] = [];
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private target: http2.ClientHttp2Session | undefined;

  private constructor(
    private readonly server: http2.Http2Server,
    readonly url: string,
    private readonly targetUrl: string,
  ) {}

  static async start(targetUrl: string): Promise<RecordingUpstream> {
    const server = http2.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const up = new RecordingUpstream(server, `http://127.0.0.1:${port}`, targetUrl);
    server.on("session", (s) => (up.sessions.add(s), s.once("close", () => up.sessions.delete(s)), s.on("error", () => {})));
    server.on("stream", (down, headers) => up.relay(down, headers));
    return up;
  }

  private relay(down: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const seen: ReceivedStream = { headers, bytes: 0, complete: false };
    this.received.push(seen);
    down.on("error", () => {});
    if (!this.target || this.target.destroyed) (this.target = http2.connect(this.targetUrl)).on("error", () => {});
    const out: http2.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(headers)) if (v !== undefined && k !== ":authority" && k !== ":scheme") out[k] = v;
    const up = this.target.request(out);
    up.on("error", () => {});
    down.on("data", (c: Buffer) => (seen.bytes += c.length));
    down.on("end", () => (seen.complete = true));
    down.pipe(up);
    let trailers: http2.IncomingHttpHeaders = {};
    up.on("response", (h, flags) => {
      const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      const { ":status": status, ...rest } = h;
      down.respond({ ":status": status, ...rest, "x-internal-host": "cp-7.internal" }, { endStream, waitForTrailers: !endStream });
      if (!endStream) up.pipe(down);
    });
    up.on("trailers", (t) => (trailers = t));
    down.on("wantTrailers", () => down.sendTrailers({ ...trailers, "x-internal-trace": "abc" }));
    down.on("close", () => !up.destroyed && up.close(http2.constants.NGHTTP2_CANCEL));
  }

  cut(): void {
    for (const s of this.sessions) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    this.target?.destroy();
    await new Promise((r) => this.server.close(r));
  }
}
