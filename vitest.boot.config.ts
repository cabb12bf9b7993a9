import { defineConfig } from "vitest/config";

/** `npm run test:boot`: the real-machine boot test alone (issue 17); slow, root, QEMU under TCG. */
export default defineConfig({
  test: {
    include: ["test/boot/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    pool: "forks",
    maxWorkers: 1,
    testTimeout: 900_000,
    hookTimeout: 900_000,
    disableConsoleIntercept: true,
  },
});
