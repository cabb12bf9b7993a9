import { join } from "node:path";
import type { Interceptor } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { BmcAgent } from "../../edge/bmc/agent.js";
import type { SimBmcs } from "../../edge/sim/bmc.js";

export interface RunningBmcAgent {
  agent: BmcAgent;
  stop(): Promise<void>;
}

/** A real metal-bmc on simulated BMCs, with test timings, running until `stop`. */
export function runBmcAgent(opts: {
  url: string;
  token: string;
  agent: string;
  dir: string;
  /** Where it keeps its command state; `<dir>/state` unless given. */
  stateDir?: string;
  version?: string;
  leaseFile: string;
  sims: SimBmcs;
  /** Run after the bearer, e.g. to cut one call on purpose. */
  interceptors?: Interceptor[];
}): RunningBmcAgent {
  const agent = new BmcAgent({
    transport: createTransport({ baseUrl: opts.url, token: opts.token, interceptors: opts.interceptors ?? [] }),
    partition: "p1",
    agent: opts.agent,
    ...(opts.version ? { version: opts.version } : {}),
    leaseFile: opts.leaseFile,
    stateDir: opts.stateDir ?? join(opts.dir, "state"),
    adapter: opts.sims,
    credentials: { user: "ADMIN", password: "ADMIN", interface: "lanplus", port: 623 },
    timing: { pollMs: 100, fullReportMs: 2_000, heartbeatMs: 100, idleMs: 1_500, backoff: { initialMs: 20, maxMs: 200 } },
  });
  const abort = new AbortController();
  const done = agent.run(abort.signal);
  return {
    agent,
    async stop() {
      abort.abort();
      await done;
    },
  };
}
