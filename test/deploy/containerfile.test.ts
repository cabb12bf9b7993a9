/**
 * deploy/Containerfile. Where a container engine answers, the images are
 * built and metal-api is started from one, as a non-root user on a
 * read-only root filesystem. Where none does (this project's own machine has
 * the docker client but no daemon, and no registry to pull base images
 * from), that test is skipped with the reason, and the rest checks what can
 * be checked without one: the stages, and that the files the runtime stage
 * copies are enough to build every bin's bundle, after which the bins only
 * read their bundles (what a read-only root filesystem needs).
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { scaled } from "../helpers/timeouts.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CONTAINERFILE = join(REPO, "deploy/Containerfile");
const text = readFileSync(CONTAINERFILE, "utf8");
const bins = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).bin as Record<string, string>;

interface Stage {
  from: string;
  name: string;
  lines: string[];
}

/** The stages: FROM lines with their instructions (continuation lines joined). */
function stages(): Stage[] {
  const out: Stage[] = [];
  const joined = text.replace(/\\\n/g, " ");
  for (const line of joined.split("\n").map((l) => l.trim())) {
    if (line === "" || line.startsWith("#")) continue;
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) out.push({ from: from[1]!, name: from[2] ?? "", lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}
const stage = (name: string) => {
  const s = stages().find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};
const arg = (name: string) => new RegExp(`^ARG ${name}=(\\S+)$`, "m").exec(text)?.[1];
/** The bins the runtime stage builds bundles of. */
const bundledBins = () => {
  const run = stage("files").lines.find((l) => l.includes("bundle-bins.mjs") && l.startsWith("RUN "));
  if (!run) return [];
  return (run.split("bundle-bins.mjs")[1] ?? "").trim().split(/\s+/);
};

describe("deploy/Containerfile", () => {
  const scratch: string[] = [];

  /** A stage's COPY lines (not those from other stages), replayed into a directory of its own, node_modules linked. */
  const replay = (name: string): string => {
    const root = mkdtempSync(join(tmpdir(), `metal-image-${name}-`));
    scratch.push(root);
    for (const line of stage(name).lines.filter((l) => l.startsWith("COPY ") && !l.includes("--from="))) {
      const [, ...parts] = line.split(/\s+/);
      const dest = parts.at(-1)!;
      for (const src of parts.slice(0, -1)) {
        const to = dest === "./" ? join(root, src) : join(root, dest);
        mkdirSync(dirname(to), { recursive: true });
        cpSync(join(REPO, src), to, { recursive: true });
      }
    }
    // The packages linked one by one: what is built goes to this directory's own node_modules/.cache, not the checkout's.
    mkdirSync(join(root, "node_modules"));
    for (const entry of readdirSync(join(REPO, "node_modules"))) if (entry !== ".cache") symlinkSync(join(REPO, "node_modules", entry), join(root, "node_modules", entry));
    return root;
  };
  afterAll(() => {
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  });

  it("builds on Node 20 with production dependencies only, and ends in the control plane's image as a non-root user", () => {
    expect(arg("NODE_IMAGE")).toMatch(/^node:20-/);
    const all = stages();
    expect(all.map((s) => s.name)).toEqual(["build", "files", "node", "backup", "metal"]);
    // The last stage is what a build without --target makes.
    expect(all.at(-1)!.name).toBe("metal");
    expect(stage("files").lines).toContain("RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force");
    for (const name of ["metal", "backup"]) {
      const s = stage(name);
      expect(
        s.lines.filter((l) => l.startsWith("USER ")),
        name,
      ).toEqual(["USER 10001:10001"]);
      const entry = s.lines.find((l) => l.startsWith("ENTRYPOINT "));
      const bin = JSON.parse(entry!.slice("ENTRYPOINT ".length))[0] as string;
      expect(Object.keys(bins), name).toContain(bin);
      expect(bundledBins(), `${name}'s entrypoint is built ahead`).toContain(bin);
    }
    // pg_dump must be as new as the server: the backup image's PostgreSQL is a build argument.
    // (Dockerfile syntax, not template literals.)
    const ref = (name: string) => ["$", "{", name, "}"].join("");
    expect(stage("backup").from).toBe(ref("POSTGRES_IMAGE"));
    expect(arg("POSTGRES_IMAGE")).toBe(`postgres:${ref("PG_MAJOR")}-bookworm`);
  });

  it("copies files that exist, and the ignore file keeps the checkout's bulk out of the build context", () => {
    for (const s of stages()) {
      for (const line of s.lines.filter((l) => l.startsWith("COPY ") && !l.includes("--from="))) {
        const sources = line.split(/\s+/).slice(1, -1);
        for (const src of sources) expect(() => statSync(join(REPO, src)), `${s.name}: ${src}`).not.toThrow();
      }
    }
    const ignored = readFileSync(join(REPO, ".containerignore"), "utf8").split("\n");
    for (const path of ["node_modules", ".git", ".metal", "dist"]) expect(ignored).toContain(path);
    // docker reads <Containerfile>.dockerignore beside it: the same file.
    expect(readFileSync(join(REPO, "deploy/Containerfile.dockerignore"), "utf8")).toBe(readFileSync(join(REPO, ".containerignore"), "utf8"));
  });

  it(
    "builds the web console from the build stage's files",
    () => {
      const root = replay("build");
      const built = spawnSync("npm", ["run", "--silent", "build:web"], { cwd: root, encoding: "utf8", timeout: scaled(240_000) });
      expect(built.status, built.stderr).toBe(0);
      expect(readdirSync(join(root, "dist/web"))).toContain("index.html");
    },
    scaled(300_000),
  );

  it(
    "builds every bundle from the runtime stage's files, after which the bins only read them",
    () => {
      const root = replay("files");
      const cache = join(root, "node_modules/.cache/metal-bins");
      const names = bundledBins();
      expect(names.sort()).toEqual(["masterdata-api", "metal-api", "metal-backup", "metalctl"]);
      const run = (args: string[]) => spawnSync(process.execPath, args, { cwd: root, encoding: "utf8", timeout: scaled(240_000) });
      const built = run([join(root, "deploy/bundle-bins.mjs"), ...names]);
      expect(built.status, built.stderr).toBe(0);
      const before = Object.fromEntries(readdirSync(cache).map((f) => [f, statSync(join(cache, f)).mtimeMs]));
      for (const name of names) {
        const help = run([join(root, "bin", `${name}.js`), "--help"]);
        expect(help.status, `${name} --help: ${help.stderr}`).toBe(0);
        expect(help.stdout.length, name).toBeGreaterThan(0);
      }
      const after = Object.fromEntries(readdirSync(cache).map((f) => [f, statSync(join(cache, f)).mtimeMs]));
      for (const name of names) expect(after[`${name}.mjs`], `${name}'s bundle was rebuilt at run time`).toBe(before[`${name}.mjs`]);
    },
    scaled(300_000),
  );

  it("builds and starts metal-api read-only as a non-root user, where a container engine answers", (ctx) => {
    const info = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8" });
    if (info.error || info.status !== 0) {
      const why = info.error ? "there is no docker client" : (info.stderr.trim().split("\n").pop() ?? "docker info failed");
      ctx.skip(`no container engine answers here (${why}): deploy/Containerfile is not built by this test`);
    }
    const tag = `metal-test:${process.pid}`;
    const builtImage = spawnSync("docker", ["build", "-f", CONTAINERFILE, "-t", tag, REPO], { encoding: "utf8", timeout: scaled(1_800_000) });
    if (builtImage.status !== 0 && /pull|resolve|registry|lookup|dial tcp|TLS handshake/i.test(builtImage.stderr)) {
      ctx.skip(`the base images cannot be pulled here: ${builtImage.stderr.trim().split("\n").pop()}`);
    }
    expect(builtImage.status, builtImage.stderr.slice(-2000)).toBe(0);
    try {
      const help = spawnSync("docker", ["run", "--rm", "--read-only", "--user", "10001:10001", tag, "--help"], { encoding: "utf8", timeout: scaled(120_000) });
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toContain("metal-api");
    } finally {
      spawnSync("docker", ["rmi", "-f", tag]);
    }
  });
});
