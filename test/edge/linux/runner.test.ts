import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BASE_ENV, CommandError, OUTPUT_LIMIT, spawnRunner } from "../../../edge/hammer/linux/runner.js";
import { eventually } from "../../helpers/eventually.js";

const runner = spawnRunner();

/** Running, not gone and not a zombie (killed, waiting for whoever inherited it to reap it). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

describe("the command runner", () => {
  it("passes argv as it is: no shell interprets a label or a path", async () => {
    const r = await runner.run(["printf", "%s|", "a; touch /nonexistent/x", "$(id)", "*"]);
    expect(r).toMatchObject({ code: 0, stdout: "a; touch /nonexistent/x|$(id)|*|" });
  });

  it("gives commands only a minimal environment plus what the call adds, and secrets through stdin", async () => {
    process.env.METAL_RUNNER_TEST_SECRET = "do-not-pass";
    try {
      const r = await runner.run(["env"], { env: { EXTRA: "1" } });
      const names = r.stdout
        .trim()
        .split("\n")
        .map((l) => l.slice(0, l.indexOf("=")));
      expect(names.sort()).toEqual([...Object.keys(BASE_ENV), "EXTRA"].sort());
    } finally {
      delete process.env.METAL_RUNNER_TEST_SECRET;
    }
    expect((await runner.run(["cat"], { input: "s3cret\n" })).stdout).toBe("s3cret\n");
    // Without input, stdin is empty rather than the hammer's own.
    expect((await runner.run(["cat"])).stdout).toBe("");
  });

  it("fails with the command, its exit code and the end of its output, in at most 1000 characters", async () => {
    const err = await runner.run(["sh", "-c", "echo first >&2; i=0; while [ $i -lt 500 ]; do echo line-$i >&2; i=$((i+1)); done; exit 3"]).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err).toMatchObject({ reason: "exit", result: { code: 3 } });
    expect(err.message.length).toBeLessThanOrEqual(1000);
    expect(err.message).toMatch(/^sh -c echo first .* exited with 3: …/);
    expect(err.message).toMatch(/line-499$/);
    expect(err.message).not.toContain("first >&2; i=0; while [ $i -lt 500 ]; do echo line-$i >&2; i=$((i+1)); done; exit 3: first");
    // allowFailure hands the result back instead.
    expect(await runner.run(["sh", "-c", "exit 4"], { allowFailure: true })).toMatchObject({ code: 4 });
  });

  it("keeps only the last 64 KiB of output", async () => {
    const r = await runner.run(["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' a; printf END"]);
    expect(r.stdout.length).toBe(OUTPUT_LIMIT);
    expect(r.stdout.endsWith("aEND")).toBe(true);
  });

  it("kills the whole process group on timeout", async () => {
    // The shell starts a grandchild and waits: killing only the shell would leave it running.
    const err = await runner.run(["sh", "-c", "sleep 300 & echo $!; wait"], { timeoutMs: 500 }).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.reason).toBe("timeout");
    expect(err.message).toMatch(/^sh -c sleep 300 & echo \$!; wait timed out after 500 ms/);
    const grandchild = Number(err.result.stdout.trim());
    expect(grandchild).toBeGreaterThan(0);
    await eventually("the grandchild to be gone", () => !running(grandchild));
  });

  it("returns when the command exits even if something it started keeps the output open", async () => {
    const r = await runner.run(["sh", "-c", "sleep 300 & echo $!"]);
    const daemon = Number(r.stdout.trim());
    expect(r.code).toBe(0);
    expect(running(daemon)).toBe(true);
    process.kill(daemon, "SIGKILL");
  });

  it("says so when a command cannot start", async () => {
    const err = await runner.run(["no-such-command-anywhere"]).catch((e) => e);
    expect(err).toMatchObject({ reason: "spawn" });
    expect(err.message).toMatch(/^no-such-command-anywhere could not start: .*ENOENT/);
    expect(runner.has("sh")).toBe(true);
    expect(runner.has("no-such-command-anywhere")).toBe(false);
  });
});
