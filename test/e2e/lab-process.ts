import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createScratchDatabase } from "../helpers/postgres.js";
import { eventually } from "./lab-harness.js";

export const REPO = resolve(import.meta.dirname, "../..");

/** A `metal-lab` process as `npm start` runs it, with what it printed so far. */
export interface LabProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in stderr (the lab's progress and banner). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** SIGINT, as Ctrl-C, then the exit code. */
  stop(): Promise<number | null>;
}

export function spawnLab(args: string[], env: NodeJS.ProcessEnv, cwd: string): LabProcess {
  const child = spawn(process.execPath, [join(REPO, "bin/metal-lab.js"), ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (pattern, timeoutMs = 120_000) =>
      eventually(
        `${pattern} from metal-lab (stderr so far:\n${err})`,
        () => {
          if (done && !pattern.test(err)) throw new Error(`metal-lab exited:\n${err}`);
          return err.match(pattern) ?? undefined;
        },
        timeoutMs,
      ),
    exited,
    stop: async () => {
      if (!done) child.kill("SIGINT");
      return exited;
    },
  };
}

/**
 * A place for a lab started as a new user would: its own working directory,
 * HOME (no metalctl config, no SSH keys unless the test puts some there) and
 * scratch PostgreSQL databases; every port chosen by the system.
 */
export interface LabPlace {
  dir: string;
  home: string;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  dispose(): Promise<void>;
}

export async function labPlace(): Promise<LabPlace> {
  const dir = await mkdtemp(join(tmpdir(), "metal-lab-proc-"));
  const home = join(dir, "home");
  await mkdir(home, { recursive: true });
  const metalDb = await createScratchDatabase("labproc_metal");
  const mdDb = await createScratchDatabase("labproc_md");
  const dataDir = join(dir, "data");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    TERM: "dumb",
    LANG: "C.UTF-8",
    METAL_DATA_DIR: dataDir,
    DATABASE_URL: metalDb.url,
    MASTERDATA_DATABASE_URL: mdDb.url,
    METAL_LISTEN: "127.0.0.1:0",
    METAL_CONSOLE_LISTEN: "127.0.0.1:0",
    METAL_LAB_LISTEN: "127.0.0.1:0",
    // Pools the size of the test servers': two test files side by side stay under PostgreSQL's 100 connections.
    METAL_DB_POOL_SIZE: "10",
    MASTERDATA_DB_POOL_SIZE: "4",
  };
  return {
    dir,
    home,
    dataDir,
    env,
    async dispose() {
      metalDb.dropLater();
      mdDb.dropLater();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
