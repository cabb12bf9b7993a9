import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { runMetalctl } from "../../cli/main.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Cli {
  /** Runs metalctl in-process with this file's own config directory; `env` adds to it. */
  run(argv: string[], env?: Record<string, string>, stdin?: string): Promise<CliResult>;
  /** Starts metalctl and hands back its output so far at any time, for commands that keep running (logs --watch). */
  start(argv: string[], env?: Record<string, string>): { output(): CliResult; done: Promise<CliResult> };
  configHome: string;
}

/** metalctl for one test file: in-process, an empty XDG config home, no inherited METALCTL_* variables. */
export function cli(defaults: Record<string, string> = {}): Cli {
  const configHome = mkdtempSync(join(tmpdir(), "metalctl-test-"));
  afterAll(() => rmSync(configHome, { recursive: true, force: true }));
  const start = (argv: string[], env: Record<string, string> = {}, stdin = "") => {
    const out = { code: -1, stdout: "", stderr: "" };
    const done = runMetalctl(argv, {
      stdout: (t) => void (out.stdout += t),
      stderr: (t) => void (out.stderr += t),
      env: { HOME: configHome, XDG_CONFIG_HOME: configHome, PATH: process.env.PATH, METAL_DATA_DIR: join(configHome, "no-lab"), ...defaults, ...env },
      stdin: async () => stdin,
    }).then((code) => ({ ...out, code }));
    return { output: () => ({ ...out }), done };
  };
  return {
    configHome,
    run: (argv, env = {}, stdin = "") => start(argv, env, stdin).done,
    start: (argv, env) => start(argv, env),
  };
}
