import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatBootParams } from "../../edge/hammer/boot-params.js";
import { loadHammerConfig } from "../../edge/hammer/config.js";
import { loadSimHammerConfig } from "../../edge/sim/hammer-main.js";

/** Runs bin/metal-hammer.js; resolves with its exit code and output. */
function hammer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["bin/metal-hammer.js", ...args], { env: { ...process.env, METAL_HAMMER_SIMULATED: "", ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    );
  });
}

const UUID = "0e1d2c3b-0000-4000-8000-000000000001";
const CREDENTIAL = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
const BOOT = { machineId: UUID, partition: "p1", credential: CREDENTIAL, credentialExpiresAt: new Date("2030-01-02T03:04:05Z"), cores: ["127.0.0.1:1", "127.0.0.2:1"] };

let dir = "";
/** A kernel command line as pixie boots the discovery image with it. */
let cmdline = "";
let SETTINGS: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hammer-binary-"));
  cmdline = join(dir, "cmdline");
  await writeFile(cmdline, `BOOT_IMAGE=/vmlinuz console=ttyS0 ${formatBootParams(BOOT)} quiet\n`);
  await writeFile(join(dir, "plain"), "BOOT_IMAGE=/vmlinuz console=ttyS0\n");
  SETTINGS = ["--boot-params", cmdline];
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the metal-hammer binary", () => {
  it("refuses to run without a hardware adapter, pointing at --simulated, and never touches the network", async () => {
    const r = await hammer(SETTINGS);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^metal-hammer: no hardware adapter for this platform yet \(\w+\); run it with --simulated/);
  });

  it("selects the simulated machine by flag or environment variable, with its own settings", async () => {
    // Each start loads TypeScript through tsx for seconds: the three run side by side.
    const [byFlag, byEnv, real, help] = await Promise.all([
      hammer(["--simulated", "--help"]),
      hammer([...SETTINGS, "--sim-uuid", "nope"], { METAL_HAMMER_SIMULATED: "1" }),
      hammer([...SETTINGS, "--sim-uuid", "nope"]),
      hammer(["--help"]),
    ]);
    expect(byFlag.code).toBe(0);
    expect(byFlag.stdout).toContain("--sim-nics");
    expect(byFlag.stdout).toContain("--boot-params");
    expect(byEnv).toMatchObject({ code: 2, stderr: "metal-hammer: --sim-uuid must be the simulated machine's UUID\n" });
    expect(real).toMatchObject({ code: 2, stderr: 'metal-hammer: unknown flag "--sim-uuid"\n' });
    // No token, no control plane URL: the hammer reaches only its metal-cores, with the credential from the command line.
    expect(help.stdout).toMatch(/--boot-params +\$METAL_HAMMER_BOOT_PARAMS \(default \/proc\/cmdline\)/);
    expect(help.stdout).toMatch(/--cores +\$METAL_HAMMER_CORES\n/);
    expect(help.stdout).not.toMatch(/--token|--api-url/);
  });

  it("reads the common settings the same way in both: the machine, its credential and its cores from the kernel command line", () => {
    const sim = loadSimHammerConfig({ METAL_HAMMER_BOOT_PARAMS: cmdline }, ["--sim-nics", "eth0=0c:c4:7a:00:00:01@leaf01/swp1", "--alive-interval", "0.5"]);
    expect(sim).toMatchObject({ boot: BOOT, timing: { aliveMs: 500, crashRebootMs: 5_000 } });
    // The simulated machine is the one the credential is for, unless told otherwise (which must then agree).
    expect(sim.sim.uuid).toBe(UUID);
    expect(sim.sim.nics).toEqual([{ name: "eth0", mac: "0c:c4:7a:00:00:01", neighbors: [{ hostname: "leaf01", port: "swp1" }] }]);
    expect(() => loadSimHammerConfig({}, [...SETTINGS, "--sim-uuid", "0e1d2c3b-0000-4000-8000-000000000002", "--sim-nics", "eth0=0c:c4:7a:00:00:01"])).toThrow(
      `--sim-uuid 0e1d2c3b-0000-4000-8000-000000000002 is not the machine of the boot parameters (metal.machine=${UUID})`,
    );
    expect(loadHammerConfig({ METAL_HAMMER_BOOT_PARAMS: cmdline }, ["--alive-interval", "0.5"])).toEqual({ boot: BOOT, timing: { aliveMs: 500, crashRebootMs: 5_000 } });
    // --cores replaces the command line's metal-cores.
    expect(loadHammerConfig({ METAL_HAMMER_CORES: "10.0.0.11:4150, [fd00::12]:4150" }, SETTINGS).boot.cores).toEqual(["10.0.0.11:4150", "[fd00::12]:4150"]);
    expect(() => loadHammerConfig({}, [...SETTINGS, "--cores", "10.0.0.11"])).toThrow('--cores ($METAL_HAMMER_CORES): "10.0.0.11" is not host:port');
    expect(() => loadHammerConfig({}, ["--boot-params", join(dir, "missing")])).toThrow(/^--boot-params \(\$METAL_HAMMER_BOOT_PARAMS\): cannot read .*missing: ENOENT/);
    expect(() => loadHammerConfig({}, ["--boot-params", join(dir, "plain")])).toThrow("the kernel command line has no metal.machine=");
    expect(() => loadHammerConfig({}, ["--token", "t"])).toThrow('unknown flag "--token"');
    expect(() => loadHammerConfig({}, ["--api-url", "http://127.0.0.1:8080"])).toThrow('unknown flag "--api-url"');
  });
});
