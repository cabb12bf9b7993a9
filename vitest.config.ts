import { defineConfig } from "vitest/config";
import { HOOK_TIMEOUT_MS, TEST_TIMEOUT_MS } from "./test/helpers/timeouts.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Each test file gets its own PostgreSQL database; two cores run two files at a time.
    pool: "forks",
    // Both derive from METAL_TEST_TIME_SCALE (test/helpers/timeouts.ts), like every wait in the suite.
    testTimeout: TEST_TIMEOUT_MS,
    hookTimeout: HOOK_TIMEOUT_MS,
    disableConsoleIntercept: true,
  },
});
