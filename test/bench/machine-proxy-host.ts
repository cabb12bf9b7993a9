import { existsSync } from "node:fs";
import { startForwardingProxy } from "./forwarding-proxy.js";

/**
 * A child process of the partition-boundary bench hosting the machine proxies
 * of several metal-cores, so that neither the server nor the bench's own
 * process carries their work. Told over IPC { upstreamUrl, count }, it starts
 * `count` proxies, each with its own listener and its own connection to the
 * control plane, and answers { endpoints, implementation }. It ends when the
 * bench closes the channel.
 *
 * metal-core's own proxy (edge/core/machine-proxy.ts) is used, unless
 * BENCH_FORWARDING_PROXY=1 asks for the bench's bare forwarding-proxy.ts (or
 * the tree has no machine-proxy.ts); the answer says which.
 */
export interface ProxyHostOrder {
  upstreamUrl: string;
  count: number;
}

export type ProxyHostReport = { endpoints: string[]; implementation: string } | { failed: string };

interface Proxy {
  endpoint: string;
  close(): Promise<void> | void;
}
type StartProxy = (opts: { upstreamUrl: string; listen: string; limits?: Record<string, number> }) => Promise<Proxy> | Proxy;

/**
 * Every hammer of the bench dials from 127.0.0.1, where real machines each
 * have an address of their own: the per-address cap must not cut them.
 */
const BENCH_LIMITS = { maxConnections: 20_000, maxConnectionsPerAddress: 20_000, maxStreams: 20_000, maxStreamsPerAddress: 20_000 };

const METAL_CORE_PROXY = new URL("../../edge/core/machine-proxy.ts", import.meta.url);

async function proxyImplementation(): Promise<{ start: StartProxy; implementation: string }> {
  if (process.env.BENCH_FORWARDING_PROXY !== "1" && existsSync(METAL_CORE_PROXY)) {
    // A path in a variable: the bench still type-checks while the module is not there yet.
    const path = "../../edge/core/machine-proxy.js";
    const mod = (await import(path)) as { startMachineProxy: StartProxy };
    return { start: mod.startMachineProxy, implementation: "edge/core/machine-proxy.ts" };
  }
  return { start: startForwardingProxy, implementation: "test/bench/forwarding-proxy.ts" };
}

/** "127.0.0.1:1234" or a URL: what the hammers dial. */
const asUrl = (endpoint: string) => (/^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`);

if (process.send) {
  const proxies: Proxy[] = [];
  process.once("message", async (order: ProxyHostOrder) => {
    try {
      const { start, implementation } = await proxyImplementation();
      for (let i = 0; i < order.count; i++) proxies.push(await start({ upstreamUrl: order.upstreamUrl, listen: "127.0.0.1:0", limits: BENCH_LIMITS }));
      process.send!({ endpoints: proxies.map((p) => asUrl(p.endpoint)), implementation } satisfies ProxyHostReport);
    } catch (err) {
      process.send!({ failed: `starting the machine proxies failed: ${String(err)}` } satisfies ProxyHostReport);
    }
  });
  process.on("disconnect", () => {
    // Not waiting for a graceful close: the bench has ended every stream's hammer already, or is failing.
    void Promise.race([Promise.allSettled(proxies.map((p) => p.close())), new Promise((r) => setTimeout(r, 2_000))]).then(() => process.exit(0));
  });
}
