import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually, type LabUnderTest, startLabUnderTest } from "../e2e/lab-harness.js";
import { REPO } from "../e2e/lab-process.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * docs/examples/allocate.mjs as a user of the package runs it: the package
 * built by `npm run build:client`, the script in a project of its own that
 * depends on `metal` (node_modules/metal links to this repository, as a
 * workspace or `npm link` would), plain `node` without tsx, against a lab.
 */
const run = promisify(execFile);
let t: LabUnderTest;
let project: string;

beforeAll(async () => {
  const [lab] = await Promise.all([startLabUnderTest(2), run("npm", ["run", "--silent", "build:client"], { cwd: REPO })]);
  t = lab;
  project = await mkdtemp(join(tmpdir(), "metal-client-user-"));
  await mkdir(join(project, "node_modules"));
  await symlink(REPO, join(project, "node_modules", "metal"));
  await writeFile(join(project, "package.json"), JSON.stringify({ name: "allocator", private: true, type: "module", dependencies: { metal: "*" } }));
  await copyFile(join(REPO, "docs", "examples", "allocate.mjs"), join(project, "allocate.mjs"));
  await eventually(
    "both lab machines to wait",
    async () => {
      const { machines } = await t.admin(AdminMachineService).list({ partition: LAB.partition });
      return machines.length === 2 && machines.every((m) => m.waiting && m.events?.log[0]?.type === T.WAITING);
    },
    scaled(120_000),
  );
}, scaled(240_000));

afterAll(async () => {
  await t?.dispose();
  if (project) await rm(project, { recursive: true, force: true });
});

const script = (env: Record<string, string>) =>
  run(process.execPath, ["allocate.mjs"], { cwd: project, env: { PATH: process.env.PATH, ...env } }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );

describe("docs/examples/allocate.mjs", () => {
  it("lists the partitions and allocates a machine for the token's project, on plain node", async () => {
    const out = await script({ METAL_URL: t.lab.apiUrl, METAL_TOKEN: t.lab.tenantToken });
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`^partition ${LAB.partition}\\t`, "m"));
    const id = /^allocated (\S+) in lab for lab-project$/m.exec(out.stdout)?.[1];
    expect(id, out.stdout).toMatch(/^[0-9a-f-]{36}$/);
    const machine = await t.machine(id!);
    expect(machine.allocation).toMatchObject({ project: LAB.project, hostname: "from-a-script" });
  });

  // Two tsc runs beside a running lab: many seconds each on a busy 2-core machine, hence its own timeout.
  it(
    "gives a TypeScript program that depends on the package its types, from the .d.ts files of the build",
    async () => {
      await writeFile(
        join(project, "typed.ts"),
        [
          'import { Code, createMetalClient } from "metal/client";',
          'import { createMetalClient as createWebClient } from "metal/client/web";',
          'import { MachineState } from "metal/client/gen/metal/api/v1/machine_pb";',
          'const metal = createMetalClient({ baseUrl: "http://127.0.0.1:8080", protocol: "grpc", tokenProvider: async () => "t" });',
          "export const ids: Promise<string[]> = metal.api.partition.list({}).then((r) => r.partitions.map((p) => p.id));",
          "// @ts-expect-error the request has no such field",
          'void metal.admin.machine.list({ partitio: "lab" });',
          "// @ts-expect-error a browser cannot speak gRPC",
          'createWebClient({ baseUrl: "/", protocol: "grpc" });',
          "export const seen = [Code.NotFound, MachineState.LOCKED];",
          "",
        ].join("\n"),
      );
      const tsc = join(REPO, "node_modules", "typescript", "bin", "tsc");
      const types = ["--types", "node", "--typeRoots", join(REPO, "node_modules", "@types")];
      for (const resolution of [
        ["--module", "nodenext", "--moduleResolution", "nodenext"],
        ["--module", "esnext", "--moduleResolution", "bundler"],
      ]) {
        const out = await run(process.execPath, [tsc, "--noEmit", "--strict", "--target", "es2022", ...resolution, ...types, "typed.ts"], { cwd: project }).catch((e: { stdout: string }) => e);
        expect(out.stdout, resolution.join(" ")).toBe("");
      }
    },
    scaled(240_000),
  );

  it("says what the server refused, by code, and exits non-zero", async () => {
    const out = await script({ METAL_URL: t.lab.apiUrl, METAL_TOKEN: "not-a-token" });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^metal: Unauthenticated: /);
  });
});
