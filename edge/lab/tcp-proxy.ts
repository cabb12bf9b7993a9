import { connect, createServer, type Server, type Socket } from "node:net";

/** host:port of a backend, e.g. one metal-api replica. */
export type Backend = string;

function split(address: string): { host: string; port: number } {
  const sep = address.lastIndexOf(":");
  return { host: address.slice(0, sep).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(sep + 1)) };
}

/**
 * A round-robin TCP proxy, as a load balancer in front of the control-plane
 * replicas: each accepted connection goes to the next backend in turn; a
 * backend that refuses (a killed replica) is skipped for that connection,
 * and when every backend refuses the client's connection is closed. Bytes
 * are passed as they are (HTTP/2, TLS, SSH alike); when either side ends or
 * fails, both are closed, so a client sees its backend die at once.
 */
export class TcpProxy {
  private readonly server: Server;
  private next = 0;
  private readonly open = new Set<Socket>();
  /** Connections handed to each backend so far, by backend. */
  readonly handed = new Map<Backend, number>();
  address = "";

  private constructor(private backends: readonly Backend[]) {
    this.server = createServer((client) => this.accept(client));
  }

  /** Listens on host:port (port 0: any free one); `address` then says where. */
  static async listen(listenAddress: string, backends: readonly Backend[]): Promise<TcpProxy> {
    const proxy = new TcpProxy(backends);
    const { host, port } = split(listenAddress);
    await new Promise<void>((resolve, reject) => proxy.server.once("error", reject).listen({ host, port, exclusive: true }, () => resolve()));
    const bound = proxy.server.address() as { address: string; port: number };
    proxy.address = `${host.includes(":") ? `[${bound.address}]` : bound.address}:${bound.port}`;
    return proxy;
  }

  /** Replaces the backends; connections already made stay where they are. */
  setBackends(backends: readonly Backend[]): void {
    this.backends = backends;
  }

  private accept(client: Socket): void {
    this.open.add(client);
    client.once("close", () => this.open.delete(client));
    // Until a backend answers, the client's bytes wait in its socket.
    client.pause();
    client.on("error", () => client.destroy());
    const start = this.next++;
    const tries = this.backends.length;
    const attempt = (i: number) => {
      if (client.destroyed) return;
      if (i >= tries) return void client.destroy();
      const backend = this.backends[(start + i) % this.backends.length]!;
      const { host, port } = split(backend);
      const upstream = connect({ host, port });
      this.open.add(upstream);
      upstream.once("close", () => this.open.delete(upstream));
      const refused = () => {
        upstream.destroy();
        attempt(i + 1);
      };
      upstream.once("error", refused);
      upstream.once("connect", () => {
        upstream.off("error", refused);
        this.handed.set(backend, (this.handed.get(backend) ?? 0) + 1);
        upstream.on("error", () => upstream.destroy());
        // Either side going away takes the other with it: a killed backend must look dead to its client at once.
        client.once("close", () => upstream.destroy());
        upstream.once("close", () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  }

  /** Stops accepting and cuts every connection through it. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.open) s.destroy();
    await closed;
  }
}
