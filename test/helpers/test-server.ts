import { afterAll } from "vitest";
import type { AppOptions } from "../../server/app.js";
import { launchServer, type TestServer } from "./server-launch.js";

export type { TestServer };

/** The whole control plane for the calling test file (see launchServer), torn down after its tests. */
export async function startTestServer(options: AppOptions = {}): Promise<TestServer> {
  const { server, stop } = await launchServer({ ...options, dropInBackground: true });
  afterAll(stop);
  return server;
}
