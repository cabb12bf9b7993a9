import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

let server: TestServer;
const m = cli();

beforeAll(async () => {
  server = await startTestServer();
});

describe("metalctl global flags and help", () => {
  it("accepts global flags before the command", async () => {
    const added = await m.run(["--api-url", server.url, "--token", server.adminToken, "context", "add", "lab"]);
    expect(added).toMatchObject({ code: 0, stderr: "" });
    const listed = await m.run(["--context", "lab", "-o", "json", "partition", "list"]);
    expect(listed).toMatchObject({ code: 0, stderr: "", stdout: "[]\n" });
    const mixed = await m.run(["--debug", "partition", "--context=lab", "list", "--no-headers"]);
    expect(mixed.code).toBe(0);
    expect(mixed.stderr).toContain("/metal.api.v1.PartitionService/List");
  });

  it("answers -h, --help, help TOPIC and help TOPIC COMMAND, listing every command and its aliases", async () => {
    const root = await m.run(["-h"]);
    expect(root.code).toBe(0);
    expect(root.stdout).toMatch(/TOPICS\n[\s\S]* {2}machine +allocate, free and operate machines \(also: machines, ms\)/);
    const topic = await m.run(["help", "machine"]);
    expect(topic.code).toBe(0);
    expect((await m.run(["machine", "--help"])).stdout).toBe(topic.stdout);
    expect((await m.run(["machine"])).stdout).toBe(topic.stdout);
    expect((await m.run(["ms"])).stdout).toBe(topic.stdout);
    expect((await m.run(["help", "machines"])).stdout).toBe(topic.stdout);
    const flat = topic.stdout.replace(/\s+/g, " ");
    for (const entry of [
      "machine create allocate a machine (also: allocate)",
      "(also: free, rm, destroy)",
      "machine list list machines (also: ls)",
      "(also: log, events)",
      "machine describe show a machine (also: get)",
    ])
      expect(flat).toContain(entry);
    const command = await m.run(["help", "machine", "logs"]);
    expect(command.code).toBe(0);
    expect(command.stdout).toContain("$ metalctl machine logs ID");
    expect(command.stdout).toContain("--until=<value>");
    expect(command.stdout).toMatch(/--until EVENT implies --watch/);
    const alias = await m.run(["machine", "free", "-h"]);
    expect(alias.code).toBe(0);
    expect(alias.stdout).toContain("--remove-from-database");
    expect(await m.run(["help", "frobnicate"])).toMatchObject({ code: 2, stderr: 'unknown command "frobnicate"; see metalctl --help\n' });
  });
});

describe("metalctl completion bash", () => {
  let script: string;
  beforeAll(async () => {
    const r = await m.run(["completion", "bash"]);
    expect(r.code).toBe(0);
    script = join(m.configHome, "completion.bash");
    writeFileSync(script, r.stdout);
  });

  /** What bash offers for a command line whose last word is being completed, through the real bash. */
  const complete = (...words: string[]): string[] => {
    const fn = words[0] === "npx" ? "_metalctl_npx" : "_metalctl";
    const program = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=(); ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync("bash", ["--norc", "-c", program, "bash", script, ...words], { encoding: "utf8", timeout: 30_000 });
    expect(r.stderr).toBe("");
    return r.stdout.split("\n").filter(Boolean);
  };

  it("completes topics and commands without repeating what is typed", () => {
    expect(complete("metalctl", "ma")).toEqual(["machine", "machines"]);
    const verbs = complete("metalctl", "machine", "");
    for (const v of ["describe", "free", "allocate", "events", "ls", "power"]) expect(verbs).toContain(v);
    expect(verbs).not.toContain("machine");
    expect(complete("metalctl", "machine", "describe", "")).toEqual([]);
    expect(complete("metalctl", "machine", "describe", "x", "")).toEqual([]);
    expect(complete("metalctl", "completion", "")).toEqual(["bash", "zsh"]);
    expect(complete("metalctl", "--context", "lab", "ma")).toEqual(["machine", "machines"]);
  });

  it("offers each command's own flags and the values of -o", () => {
    const list = complete("metalctl", "machine", "list", "--");
    expect(list).toContain("--rack");
    expect(list).toContain("--no-allocated");
    expect(list).toContain("--output");
    expect(list).not.toContain("--file");
    const apply = complete("metalctl", "partition", "apply", "--");
    expect(apply).toContain("--file");
    expect(apply).not.toContain("--rack");
    expect(complete("metalctl", "ms", "ls", "-o", "")).toEqual(["table", "wide", "json", "yaml"]);
    expect(complete("metalctl", "machine", "list", "--output", "j")).toEqual(["json"]);
    // The value of a flag is not taken for a command word.
    expect(complete("metalctl", "machine", "logs", "--until", "x", "--w")).toEqual(["--watch"]);
  });

  it("works after npx metalctl, the README's way of running it", () => {
    expect(complete("npx", "metal")).toEqual(["metalctl"]);
    expect(complete("npx", "metalctl", "machine", "cr")).toEqual(["create"]);
    expect(complete("npx", "metalctl", "machine", "create", "--pa")).toEqual(["--partition"]);
  });
});
