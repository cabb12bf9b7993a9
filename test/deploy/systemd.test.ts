/**
 * deploy/systemd: every unit passes `systemd-analyze verify` without a
 * warning (an unknown or misspelt directive is only a warning there, so
 * warnings fail here too) and stays within an exposure level of
 * `systemd-analyze security`; each runs a bin of the package, and each
 * example environment file holds only settings its daemon reads and
 * accepts.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBmcConfig } from "../../edge/bmc/config.js";
import { loadCoreConfig } from "../../edge/core/main.js";
import { loadPixieConfig } from "../../edge/pixie/main.js";
import { loadBackupSettings } from "../../server/backup/settings.js";
import { loadConfig } from "../../server/config.js";
import { loadMasterdataConfig } from "../../server/masterdata/config.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const DIR = join(REPO, "deploy/systemd");
const SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze";
/** Where the units expect the package's bins (`npm install -g`). */
const BIN_DIR = "/usr/local/bin/";

const units = readdirSync(DIR).filter((f) => f.endsWith(".service"));
const bins = Object.keys(JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).bin as Record<string, string>);

/** The exposure `systemd-analyze security` may find at most: metal-core runs as root (it reconfigures the switch). */
const MAX_EXPOSURE: Record<string, number> = { "metal-core.service": 4.5 };
const DEFAULT_MAX_EXPOSURE = 2.5;

/** What each daemon's example environment is checked with: its settings' source and its own loader. */
const DAEMONS: Record<string, { source: string; load: (env: Record<string, string>) => unknown }> = {
  "metal-core": { source: "edge/core/main.ts", load: (env) => loadCoreConfig(env, []) },
  "metal-bmc": { source: "edge/bmc/config.ts", load: (env) => loadBmcConfig(env, []) },
  pixie: { source: "edge/pixie/main.ts", load: (env) => loadPixieConfig(env, []) },
  "metal-api": { source: "server/config.ts", load: (env) => loadConfig(env, []) },
  "masterdata-api": { source: "server/masterdata/config.ts", load: (env) => loadMasterdataConfig(env, []) },
  "metal-backup": { source: "server/backup/settings.ts", load: (env) => loadBackupSettings(env, []) },
};

const directives = (unit: string, key: string) =>
  readFileSync(join(DIR, unit), "utf8")
    .split("\n")
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

describe("deploy/systemd", () => {
  let stubs: string;
  let copies: string;

  beforeAll(() => {
    // verify checks that ExecStart's program exists: the units' copies point at stand-ins for the installed bins.
    stubs = mkdtempSync(join(tmpdir(), "metal-units-bin-"));
    copies = mkdtempSync(join(tmpdir(), "metal-units-"));
    for (const bin of bins) {
      writeFileSync(join(stubs, bin), "#!/bin/sh\n");
      chmodSync(join(stubs, bin), 0o755);
    }
    for (const unit of units) writeFileSync(join(copies, unit), readFileSync(join(DIR, unit), "utf8").replaceAll(BIN_DIR, `${stubs}/`));
  });
  afterAll(() => {
    rmSync(stubs, { recursive: true, force: true });
    rmSync(copies, { recursive: true, force: true });
  });

  it("has units for the partition daemons and the control plane", () => {
    expect(units.sort()).toEqual(["masterdata-api.service", "metal-api.service", "metal-backup.service", "metal-bmc.service", "metal-core.service", "pixie.service"]);
  });

  it("runs a bin of the package in each unit, its bundle built first with full privileges", () => {
    for (const unit of units) {
      const name = unit.replace(/\.service$/, "");
      expect(directives(unit, "ExecStart"), unit).toEqual([`${BIN_DIR}${name}${name === "metal-backup" ? " run" : ""}`]);
      expect(bins, unit).toContain(name);
      expect(directives(unit, "ExecStartPre"), unit).toEqual([`+/bin/sh -c 'exec ${BIN_DIR}${name} --help >/dev/null'`]);
      expect(directives(unit, "Restart"), unit).toEqual(["always"]);
      expect(directives(unit, "NoNewPrivileges"), unit).toEqual(["yes"]);
      expect(directives(unit, "ProtectSystem"), unit).toEqual(["strict"]);
      expect(directives(unit, "EnvironmentFile"), unit).toEqual([`/etc/metal/${name}.env`]);
    }
  });

  it("passes systemd-analyze verify without a warning", (ctx) => {
    if (!existsSync(SYSTEMD_ANALYZE)) ctx.skip(`${SYSTEMD_ANALYZE} is not installed here (Debian: the systemd package)`);
    for (const unit of units) {
      const out = spawnSync(SYSTEMD_ANALYZE, ["verify", "--man=no", join(copies, unit)], { encoding: "utf8" });
      expect({ unit, status: out.status, output: `${out.stdout}${out.stderr}`.trim() }).toEqual({ unit, status: 0, output: "" });
    }
  });

  it("stays within its exposure level in systemd-analyze security", (ctx) => {
    if (!existsSync(SYSTEMD_ANALYZE)) ctx.skip(`${SYSTEMD_ANALYZE} is not installed here (Debian: the systemd package)`);
    for (const unit of units) {
      const out = spawnSync(SYSTEMD_ANALYZE, ["security", "--offline=yes", "--no-pager", join(copies, unit)], { encoding: "utf8" });
      const level = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(out.stdout)?.[1];
      if (level === undefined) ctx.skip(`systemd-analyze security --offline is not supported here: ${out.stderr.trim().split("\n")[0]}`);
      expect(Number(level), unit).toBeLessThanOrEqual(MAX_EXPOSURE[unit] ?? DEFAULT_MAX_EXPOSURE);
    }
  });

  it("shows masterdata-api's TLS, its key handed over as a credential: uncommented, those lines give a config that serves TLS", () => {
    const text = readFileSync(join(DIR, "masterdata-api.service"), "utf8");
    const tlsLines = text
      .split("\n")
      .filter((l) => /^#(LoadCredential|Environment)=/.test(l))
      .map((l) => l.slice(1));
    const credentials = tlsLines.filter((l) => l.startsWith("LoadCredential=")).map((l) => l.slice("LoadCredential=".length).split(":"));
    // Root's files under /etc/metal, read by systemd, never by the unit's dynamic user.
    expect(credentials.map(([, path]) => path).sort()).toEqual(["/etc/metal/masterdata-api/tls.crt", "/etc/metal/masterdata-api/tls.key"]);
    const env: Record<string, string> = { METAL_DATABASE_URL: "postgres://r@db/metal" };
    for (const l of tlsLines.filter((x) => x.startsWith("Environment="))) {
      const [name, value] = l.slice("Environment=".length).split("=");
      expect(value, name).toMatch(/^%d\//);
      expect(credentials.map(([id]) => id)).toContain(value!.slice(3));
      env[name!] = value!;
    }
    const c = loadMasterdataConfig(env, []);
    expect([c.tlsCert, c.tlsKey]).toEqual(["%d/tls.crt", "%d/tls.key"]);
  });

  it("has example environment files with only settings the daemons read and accept", () => {
    const tmp = mkdtempSync(join(tmpdir(), "metal-units-env-"));
    try {
      for (const [daemon, { source, load }] of Object.entries(DAEMONS)) {
        const file = join(DIR, `${daemon}.env.example`);
        const text = readFileSync(join(REPO, source), "utf8");
        const names = [...text.matchAll(/env:\s*"([A-Z][A-Z0-9_]*)"/g)].map((m) => m[1]!);
        // Secrets read as VAR or VAR_FILE (metal-backup's S3 keys).
        for (const m of text.matchAll(/readSecret\(env,\s*"([A-Z][A-Z0-9_]*)"\)/g)) names.push(m[1]!, `${m[1]}_FILE`);
        const env: Record<string, string> = {};
        for (const line of readFileSync(file, "utf8").split("\n")) {
          const m = /^#?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
          if (!m) continue;
          expect(names, `${daemon}.env.example: ${m[1]}`).toContain(m[1]);
          // Commented-out lines show alternatives; the others are loaded, with a stand-in for what the operator fills in.
          if (!line.startsWith("#")) env[m[1]!] = m[2] === "" ? "placeholder" : m[2]!;
        }
        // The unit's own Environment= lines, with the credential its unit hands over.
        for (const value of directives(`${daemon}.service`, "Environment")) {
          const [name, ...rest] = value.split("=");
          expect(names, `${daemon}.service: ${name}`).toContain(name);
          env[name!] = rest.join("=");
        }
        // A credential the unit hands over (%d/...) is a file of the test's.
        for (const [name, value] of Object.entries(env)) {
          if (!value.startsWith("%d/")) continue;
          env[name] = join(tmp, value.slice(3));
          writeFileSync(env[name]!, "placeholder\n");
        }
        expect(() => load(env), daemon).not.toThrow();
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
