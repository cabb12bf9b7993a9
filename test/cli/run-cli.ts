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
  configHome: string;
}

/** metalctl for one test file: in-process, an empty XDG config home, no inherited METALCTL_* variables. */
export function cli(defaults: Record<string, string> = {}): Cli {
  const configHome = mkdtempSync(join(tmpdir(), "metalctl-test-"));
  afterAll(() => rmSync(configHome, { recursive: true, force: true }));
  return {
    configHome,
    async run(argv, env = {}, stdin = "") {
      let stdout = "";
      let stderr = "";
      const code = await runMetalctl(argv, {
        stdout: (t) => void (stdout += t),
        stderr: (t) => void (stderr += t),
        env: { HOME: configHome, XDG_CONFIG_HOME: configHome, PATH: process.env.PATH, METAL_DATA_DIR: join(configHome, "no-lab"), ...defaults, ...env },
        stdin: async () => stdin,
      });
      return { code, stdout, stderr };
    },
  };
}
