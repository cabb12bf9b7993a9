import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

let server: TestServer;
const m = cli();

beforeAll(async () => {
  server = await startTestServer();
});

describe("where metalctl finds its contexts", () => {
  it("uses a lab's contexts in its data directory while the user has no config file of their own", async () => {
    const dataDir = join(m.configHome, "checkout", ".metal");
    mkdirSync(join(dataDir, "metalctl"), { recursive: true });
    writeFileSync(join(dataDir, "metalctl", "config.yaml"), stringify({ current: "lab", contexts: { lab: { url: server.url, token: server.adminToken } } }));
    const env = { METAL_DATA_DIR: dataDir };
    const listed = await m.run(["partition", "list", "-o", "json"], env);
    expect(listed).toMatchObject({ code: 0, stderr: "", stdout: "[]\n" });
    const contexts = await m.run(["context", "list", "--no-headers"], env);
    expect(contexts.stdout).toMatch(/^\*\s+lab\s+http:\/\/127\.0\.0\.1:\d+\s+yes\n$/);

    // The user's own file, once there, is theirs to choose from: the lab's contexts are not mixed in.
    mkdirSync(join(m.configHome, "metalctl"), { recursive: true });
    writeFileSync(join(m.configHome, "metalctl", "config.yaml"), stringify({ current: "prod", contexts: { prod: { url: "http://127.0.0.1:1" } } }));
    const own = await m.run(["context", "list", "--no-headers"], env);
    expect(own.stdout).toMatch(/^\*\s+prod\s+http:\/\/127\.0\.0\.1:1\s*\n$/);
  });
});
