import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

// metalctl carries an image's SHA-256 (issue 17): image create --sha256, describe, update -f.
let server: TestServer;
const m = cli();
let run: (argv: string[]) => ReturnType<typeof m.run>;

const DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

beforeAll(async () => {
  server = await startTestServer();
  run = (argv) => m.run(argv, { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken });
});

const describeImage = async (id: string) => parse((await run(["image", "describe", id])).stdout) as Record<string, unknown>;

describe("metalctl image --sha256", () => {
  it("creates an image from flags with its checksum (uppercase stored lowercase); describe and list -o wide show it", async () => {
    const created = await run([
      "image",
      "create",
      "--id",
      "debian-12.0.20250101",
      "--url",
      "https://images.example/debian.img",
      "--features",
      "machine,firewall",
      "--sha256",
      DIGEST.toUpperCase(),
      "--classification",
      "supported",
    ]);
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect(await describeImage("debian-12.0.20250101")).toMatchObject({
      id: "debian-12.0.20250101",
      url: "https://images.example/debian.img",
      sha256: DIGEST,
      features: ["IMAGE_FEATURE_MACHINE", "IMAGE_FEATURE_FIREWALL"],
      classification: "IMAGE_CLASSIFICATION_SUPPORTED",
    });
    const wide = await run(["image", "list", "-o", "wide", "--no-headers"]);
    expect(wide.stdout).toMatch(new RegExp(`^debian-12\\.0\\.20250101\\s.*https://images\\.example/debian\\.img\\s+${DIGEST}`, "m"));
  });

  it("refuses a checksum that is not 64 hex digits, creating nothing", async () => {
    const bad = await run(["image", "create", "--id", "debian-12.0.20250102", "--url", "https://images.example/d.img", "--features", "machine", "--sha256", "abc"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("sha256");
    expect((await run(["image", "describe", "debian-12.0.20250102"])).code).not.toBe(0);
  });

  it("update -f replaces the checksum; a document without it keeps it; an empty one clears it", async () => {
    const file = (name: string, text: string) => {
      const p = join(m.configHome, name);
      writeFileSync(p, text);
      return p;
    };
    await run(["image", "update", "-f", file("replace.yaml", `id: debian-12.0.20250101\nsha256: ${OTHER}\n`)]);
    expect((await describeImage("debian-12.0.20250101")).sha256).toBe(OTHER);
    await run(["image", "update", "-f", file("rename.yaml", "id: debian-12.0.20250101\nname: Debian\n")]);
    expect(await describeImage("debian-12.0.20250101")).toMatchObject({ name: "Debian", sha256: OTHER });
    await run(["image", "update", "-f", file("clear.yaml", 'id: debian-12.0.20250101\nsha256: ""\n')]);
    expect(await describeImage("debian-12.0.20250101")).not.toHaveProperty("sha256");
  });
});
