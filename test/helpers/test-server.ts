import { afterAll } from "vitest";
import type { AppOptions } from "../../server/app.js";
import { launchServer, type TestServer } from "./server-launch.js";

export type { TestServer };

/**
 * Connections of a test server's metal database pool (production default: 20). Two test files run side by
 * side, each with a server (plus masterdata's pool), next to whatever else uses the same PostgreSQL: the
 * smaller pool keeps them under its 100 connections. A file that needs more concurrent transactions says so.
 */
const TEST_POOL_SIZE = "10";
// Masterdata answers a few lookups per call (most are cached): a handful of connections keeps two test files side by side well under PostgreSQL's 100.
const MASTERDATA_TEST_POOL_SIZE = "4";

/** The whole control plane for the calling test file (see launchServer), torn down after its tests. */
export async function startTestServer(options: AppOptions & { env?: Record<string, string> } = {}): Promise<TestServer> {
  const { server, stop } = await launchServer({ ...options, env: { METAL_DB_POOL_SIZE: TEST_POOL_SIZE, MASTERDATA_DB_POOL_SIZE: MASTERDATA_TEST_POOL_SIZE, ...options.env }, dropInBackground: true });
  afterAll(stop);
  return server;
}
