import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { cli } from "./run-cli.js";

const m = cli();

describe("machine console with a context that carries the console's known_hosts and a key (as the lab writes them)", () => {
  it("passes ssh the context's key and known_hosts beside the user's own; -i still wins", async () => {
    // An `ssh` first on PATH that only records its arguments: nothing is dialed.
    const bin = join(m.configHome, "bin");
    mkdirSync(bin, { recursive: true });
    const argsFile = join(m.configHome, "ssh-args");
    writeFileSync(join(bin, "ssh"), `#!/bin/sh\nprintf '%s\\n' "$@" > '${argsFile}'\n`);
    chmodSync(join(bin, "ssh"), 0o755);
    mkdirSync(join(m.configHome, "metalctl"), { recursive: true });
    const context = { url: "http://127.0.0.1:1", token: "t", console: "127.0.0.1:5299", knownHosts: "/lab/metalctl/known_hosts", sshKey: "/lab/metalctl/id_ed25519" };
    writeFileSync(join(m.configHome, "metalctl", "config.yaml"), stringify({ current: "lab", contexts: { lab: context } }));
    const env = { PATH: `${bin}:${process.env.PATH}` };
    const id = "0196a3c4-0000-7000-8000-000000000001";

    expect((await m.run(["machine", "console", id], env)).code).toBe(0);
    expect(readFileSync(argsFile, "utf8").trim().split("\n")).toEqual([
      "-t",
      "-p",
      "5299",
      "-o",
      "SendEnv=LC_METAL_TOKEN",
      "-o",
      "UserKnownHostsFile=/lab/metalctl/known_hosts ~/.ssh/known_hosts",
      "-i",
      "/lab/metalctl/id_ed25519",
      `${id}@127.0.0.1`,
    ]);
    expect((await m.run(["machine", "console", id, "-i", "/mine"], env)).code).toBe(0);
    expect(readFileSync(argsFile, "utf8")).toContain("-i\n/mine\n");
  });
});
