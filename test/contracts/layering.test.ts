import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scaled } from "../helpers/timeouts.js";

// The layering rules live in .dependency-cruiser.cjs; .ci/run runs them as `npm run lint:layers`.
// These tests break every rule on purpose in a tiny tree with the project's folder names and
// check that the very command of that script, with a copy of the project's config, fails and
// names exactly those breaks; then they check that the real tree keeps the rules.

const root = resolve(import.meta.dirname, "../..");
const CONFIG = ".dependency-cruiser.cjs";
const depcruiseBin = join(root, "node_modules/dependency-cruiser/bin/dependency-cruise.mjs");
const run = promisify(execFile);

/** The arguments of package.json's `lint:layers` script (folders and --config), what CI runs. */
async function lintLayersArgs(): Promise<string[]> {
  const { scripts } = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const [command, ...args] = (scripts["lint:layers"] ?? "").split(/\s+/);
  expect(command).toBe("depcruise");
  expect(args.join(" ")).toContain(`--config ${CONFIG}`);
  return args;
}

interface Violation {
  rule: string;
  from: string;
  to: string;
}

interface CruiseResult {
  /** Only when asked for (it costs a second run). */
  exitCode?: number;
  violations: Violation[];
  modules: number;
  /** Imports of the project's own files that depcruise could not follow (a `.js` specifier not mapped to `.ts`). */
  unresolvedLocal: string[];
}

/** Runs the depcruise CLI in `cwd` with `args` and the given report format: its exit code and output. */
async function depcruiseCli(cwd: string, args: string[], outputType: "err" | "json") {
  try {
    const { stdout } = await run(process.execPath, [depcruiseBin, ...args, "--output-type", outputType], { cwd, maxBuffer: 256 * 1024 * 1024 });
    return { exitCode: 0, stdout };
  } catch (err) {
    const failed = err as { code?: unknown; stdout?: string };
    if (typeof failed.code !== "number" || failed.stdout === undefined) throw err;
    return { exitCode: failed.code, stdout: failed.stdout };
  }
}

/**
 * The exit code of the `lint:layers` command as CI runs it (its default `err` report exits non-zero
 * when a rule is broken; the JSON report always exits 0) and the violations from the JSON report.
 */
async function depcruise(cwd: string, withExitCode: boolean): Promise<CruiseResult> {
  const args = await lintLayersArgs();
  const [exitCode, { stdout }] = await Promise.all([withExitCode ? depcruiseCli(cwd, args, "err").then((r) => r.exitCode) : undefined, depcruiseCli(cwd, args, "json")]);
  const report = JSON.parse(stdout) as {
    modules: { source: string; dependencies: { module: string; couldNotResolve: boolean }[] }[];
    summary: {
      violations: { rule: { name: string }; from: string; to: string; cycle?: { name: string }[] }[];
      totalCruised: number;
    };
  };
  return {
    exitCode,
    modules: report.summary.totalCruised,
    unresolvedLocal: report.modules.flatMap((m) => m.dependencies.filter((d) => d.couldNotResolve && d.module.startsWith(".")).map((d) => `${m.source} -> ${d.module}`)),
    violations: report.summary.violations.map((v) =>
      // A cycle is reported from whichever of its modules depcruise reached first: name it by its members.
      v.cycle
        ? {
            rule: v.rule.name,
            from: "cycle",
            to: [v.from, ...v.cycle.map((c) => c.name)]
              .filter((m, i, all) => all.indexOf(m) === i)
              .sort()
              .join(" "),
          }
        : { rule: v.rule.name, from: v.from, to: v.to },
    ),
  };
}

/** One line per violation, sorted: what a failing assertion prints readably. */
function lines(violations: Violation[]): string[] {
  return [...new Set(violations.map((v) => `${v.rule}: ${v.from} -> ${v.to}`))].sort();
}

/** The fake tree: every file is either allowed (and must stay unreported) or breaks exactly one rule. */
const tree: Record<string, string> = {
  "tsconfig.json": JSON.stringify({
    compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true },
    include: ["server", "edge", "cli", "client", "gen", "test", "bin"],
  }),
  // Stand-ins for the packages the rules name; only their paths under node_modules matter.
  "node_modules/pg/package.json": JSON.stringify({ name: "pg", main: "index.js" }),
  "node_modules/pg/index.js": "module.exports = {};\n",
  "node_modules/drizzle-orm/package.json": JSON.stringify({ name: "drizzle-orm", main: "index.js" }),
  "node_modules/drizzle-orm/index.js": "module.exports = {};\n",
  "node_modules/mqtt/package.json": JSON.stringify({ name: "mqtt", main: "index.js" }),
  "node_modules/mqtt/index.js": "module.exports = {};\n",

  // --- allowed ---
  "gen/metal/v1/machine_pb.ts": "export type Machine = { id: string };\n",
  "server/ids.ts": "export const newId = (): string => 'id';\n",
  "server/db/schema/index.ts": "export const machines = { name: 'machines' };\nexport type MachineRow = { id: string };\n",
  "server/db/database.ts": 'import pg from "pg";\nimport { sql } from "drizzle-orm";\nexport const open = () => [pg, sql];\n',
  "server/domain/size.ts": "export const fits = (n: number): boolean => n > 0;\n",
  "server/domain/provisioning.ts": 'import { fits } from "./size.js";\nimport type { Machine } from "../../gen/metal/v1/machine_pb.js";\nexport const next = (m: Machine) => fits(m.id.length);\n',
  "server/repositories/machine-repository.ts":
    'import { sql } from "drizzle-orm";\nimport { machines, type MachineRow } from "../db/schema/index.js";\nimport { next } from "../domain/provisioning.js";\nexport const find = (): MachineRow | undefined => (sql && machines && next ? undefined : undefined);\n',
  "server/convert/machine.ts": 'import type { MachineRow } from "../db/schema/index.js";\nexport const toProto = (row: MachineRow) => ({ id: row.id });\n',
  "server/usecases/machines/free.ts":
    'import type { MachineRow } from "../../db/schema/index.js";\nimport { find } from "../../repositories/machine-repository.js";\nexport const free = (): MachineRow | undefined => find();\n',
  "server/repositories/tenant/machine-repository.ts": 'import { find as unscoped } from "../machine-repository.js";\nexport const find = () => unscoped();\n',
  "server/services/api/ip-service.ts":
    'import { find } from "../../repositories/tenant/machine-repository.js";\nimport { free } from "../../usecases/machines/free.js";\nimport { toProto } from "../../convert/machine.js";\nimport { fits } from "../../domain/size.js";\nexport const get = () => [find, free, toProto, fits];\n',
  "edge/common/retry.ts": "export const retry = (): number => 1;\n",
  "edge/sim/machine.ts": "export class SimulatedMachine {}\n",
  "edge/hammer/hardware.ts": 'import { retry } from "../common/retry.js";\nexport const probe = () => retry();\n',
  "bin/metal-api.js": 'await import("../server/app.js");\n',
  "edge/lab/lab.ts": 'import { newId } from "../../server/ids.js";\nimport { SimulatedMachine } from "../sim/machine.js";\nexport const lab = () => [newId, SimulatedMachine];\n',
  "client/bearer.ts": 'import type { Machine } from "../gen/metal/v1/machine_pb.js";\nexport type Seen = Machine;\n',
  "test/server/free.test.ts":
    'import { free } from "../../server/usecases/machines/free.js";\nimport { SimulatedMachine } from "../../edge/sim/machine.js";\nimport { machines } from "../../server/db/schema/index.js";\nexport const t = [free, SimulatedMachine, machines];\n',

  // --- each breaks one rule ---
  "server/domain/disk.ts": 'import { readFileSync } from "node:fs";\nexport const read = () => readFileSync;\n',
  "server/domain/pricing.ts": 'import mqtt from "mqtt";\nexport const price = () => mqtt;\n',
  "server/domain/candidates.ts": 'import { find } from "../repositories/machine-repository.js";\nexport const pick = () => find();\n',
  "server/services/api/machine-service.ts": 'import type { MachineRow } from "../../db/schema/index.js";\nexport const get = (row: MachineRow) => row.id;\n',
  "server/usecases/machines/allocate.ts": 'import { sql } from "drizzle-orm";\nimport { machines } from "../../db/schema/index.js";\nexport const allocate = () => [sql, machines];\n',
  "server/usecases/images/lookup.ts": 'import { get } from "../../services/api/ip-service.js";\nexport const lookup = () => get();\n',
  "server/sessions/wait.ts": "export const waiters = new Set<string>();\n",
  "server/repositories/ip-repository.ts": 'import { waiters } from "../sessions/wait.js";\nexport const wake = () => waiters.size;\n',
  "server/jobs/reaper.ts": 'import pg from "pg";\nexport const reap = () => pg;\n',
  "server/app.ts": 'import { probe } from "../edge/hammer/hardware.js";\nexport const app = () => probe();\n',
  "server/bus/publisher.ts": 'import { listen } from "./subscriber.js";\nexport const publish = () => listen;\n',
  "server/bus/subscriber.ts": 'import { publish } from "./publisher.js";\nexport const listen = () => publish;\n',
  "edge/hammer/main.ts": 'import { SimulatedMachine } from "../sim/machine.js";\nexport const main = () => new SimulatedMachine();\n',
  "test/helpers/machines.ts": "export const fakeMachines = (): string[] => [];\n",
  "edge/core/fixtures.ts": 'import { fakeMachines } from "../../test/helpers/machines.js";\nexport const seed = () => fakeMachines();\n',
  "edge/core/agent.ts": 'import { newId } from "../../server/ids.js";\nexport const agent = () => newId();\n',
  "cli/commands/list.ts": 'import { find } from "../../server/repositories/machine-repository.js";\nexport const list = () => find();\n',
  "client/transport.ts": 'import { newId } from "../server/ids.js";\nexport const transport = () => newId();\n',
  "gen/metal/v1/broken_pb.ts": 'import { newId } from "../../../server/ids.js";\nexport const x = newId;\n',
  "server/repositories/network-repository.ts": "export const networkRepository = { get: () => undefined };\nexport type NetworkRow = { id: string };\n",
  "server/services/api/network-service.ts":
    'import { networkRepository } from "../../repositories/network-repository.js";\nimport type { NetworkRow } from "../../repositories/network-repository.js";\nexport const get = (row?: NetworkRow) => [networkRepository.get(), row];\n',
};

const expected = [
  "client-is-neutral: client/transport.ts -> server/ids.ts",
  "domain-imports-only-domain: server/domain/candidates.ts -> server/repositories/machine-repository.ts",
  "domain-no-io: server/domain/disk.ts -> fs",
  "domain-no-io-packages: server/domain/pricing.ts -> node_modules/mqtt/index.js",
  "database-drivers-only-in-db-setup: server/jobs/reaper.ts -> node_modules/pg/index.js",
  "drizzle-only-in-data-layer: server/usecases/machines/allocate.ts -> node_modules/drizzle-orm/index.js",
  "edge-cli-not-to-server: cli/commands/list.ts -> server/repositories/machine-repository.ts",
  "edge-cli-not-to-server: edge/core/agent.ts -> server/ids.ts",
  "gen-is-generated: gen/metal/v1/broken_pb.ts -> server/ids.ts",
  "hammer-not-to-sim: edge/hammer/main.ts -> edge/sim/machine.ts",
  "handlers-not-to-schema: server/services/api/machine-service.ts -> server/db/schema/index.ts",
  "no-circular: cycle -> server/bus/publisher.ts server/bus/subscriber.ts",
  "repositories-not-to-upper-layers: server/repositories/ip-repository.ts -> server/sessions/wait.ts",
  "server-not-to-edge-cli: server/app.ts -> edge/hammer/hardware.ts",
  "code-not-to-test: edge/core/fixtures.ts -> test/helpers/machines.ts",
  "tables-only-in-data-layer: server/usecases/machines/allocate.ts -> server/db/schema/index.ts",
  "handlers-only-from-composition-root: server/usecases/images/lookup.ts -> server/services/api/ip-service.ts",
  "tenant-handlers-use-scoped-repositories: server/services/api/network-service.ts -> server/repositories/network-repository.ts",
].sort();

describe("layering rules (.dependency-cruiser.cjs)", () => {
  let fake: string;

  beforeAll(async () => {
    fake = await mkdtemp(join(tmpdir(), "metal-layering-"));
    for (const [path, text] of Object.entries(tree)) {
      await mkdir(dirname(join(fake, path)), { recursive: true });
      await writeFile(join(fake, path), text);
    }
    await copyFile(join(root, CONFIG), join(fake, CONFIG));
  });

  afterAll(async () => {
    if (fake) await rm(fake, { recursive: true, force: true });
  });

  it("reports each deliberate break by its rule, and nothing in the allowed files", async () => {
    const result = await depcruise(fake, true);
    expect(lines(result.violations)).toEqual(expected);
    expect(result.unresolvedLocal).toEqual([]);
    // A violation fails the command, which is what makes .ci/run fail.
    expect(result.exitCode).not.toBe(0);
  });

  it("names every rule of the config in the fake tree, so no rule goes untested", async () => {
    const { forbidden } = (await import(join(root, CONFIG))).default as { forbidden: { name: string; severity: string }[] };
    // A warning would not fail CI.
    expect(forbidden.filter((rule) => rule.severity !== "error")).toEqual([]);
    const tested = new Set(expected.map((line) => line.slice(0, line.indexOf(":"))));
    expect(forbidden.map((rule) => rule.name).sort()).toEqual([...tested].sort());
  });

  it("is what CI runs", async () => {
    const ci = await readFile(join(root, ".ci/run"), "utf8");
    expect(ci).toMatch(/^npm run --silent lint:layers$/m);
  });

  it(
    "holds in the real tree",
    async () => {
      // Every rule is an error, so no violation here means the CI command exits 0 (the fake tree checks the exit code).
      const result = await depcruise(root, false);
      expect(lines(result.violations)).toEqual([]);
      // The cruise really followed the sources: with a wrong tsConfig the `.js` specifiers stay unresolved and
      // every rule passes vacuously.
      expect(result.unresolvedLocal).toEqual([]);
      expect(result.modules).toBeGreaterThan(300);
    },
    scaled(120_000),
  );
});
