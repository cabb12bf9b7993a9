import { defineConfig } from "vitest/config";
import { HOOK_TIMEOUT_MS, TEST_TIMEOUT_MS } from "./test/helpers/timeouts.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The real-machine boot test (a QEMU VM through PXE, the discovery image, install) runs alone: `npm run test:boot`.
    exclude: ["test/boot/**", "**/node_modules/**"],
    // Migrated template databases made once; scratch databases of killed runs dropped.
    globalSetup: ["test/helpers/global-setup.ts"],
    // Each test file gets its own PostgreSQL databases, so files can run side by side: two at a time (vitest's
    // default on 2 cores is one, and most of a file's time is waiting on servers, timers and PostgreSQL, not CPU).
    pool: "forks",
    maxWorkers: 2,
    // A worker keeps the modules it loaded for its next file instead of importing the whole server again for
    // each one (seconds per file). Every file still builds its own servers and databases.
    isolate: false,
    // Both derive from METAL_TEST_TIME_SCALE (test/helpers/timeouts.ts), like every wait in the suite.
    testTimeout: TEST_TIMEOUT_MS,
    hookTimeout: HOOK_TIMEOUT_MS,
    disableConsoleIntercept: true,
  },
});
