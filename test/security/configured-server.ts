import { afterAll } from "vitest";
import type { Config } from "../../server/config.js";
import { launchServer, type TestServer } from "../helpers/server-launch.js";

export type ConfiguredServer = TestServer & { config: Config };

/**
 * The whole control plane as main starts it, configured through its
 * environment variables (`env`: timeouts, caps, stream limits), on scratch
 * PostgreSQL databases; torn down after the calling file's tests.
 */
export async function startConfiguredServer(env: Record<string, string>): Promise<ConfiguredServer> {
  const { server, config, stop } = await launchServer({ env });
  afterAll(stop);
  return { ...server, config };
}
