import { randomBytes } from "node:crypto";
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
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
    if (wire === "grpc") return createTransport({ baseUrl, token, sessionManager: manager });
    const interceptors: Interceptor[] = token ? [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] : [];
    if (wire === "grpc-web") return createGrpcWebTransport({ baseUrl, httpVersion: "2", sessionManager: manager, interceptors });
    return createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, sessionManager: manager, interceptors });
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
