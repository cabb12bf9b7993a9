import { execFile } from "node:child_process";
import { describe, expect, it } from "vitest";
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

const SETTINGS = ["--api-url", "http://127.0.0.1:1", "--token", "t", "--partition", "p1"];

describe("the metal-hammer binary", () => {
  it("refuses to run without a hardware adapter, pointing at --simulated, and never touches the network", async () => {
    const r = await hammer(SETTINGS);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^metal-hammer: no hardware adapter for this platform yet \(\w+\); run it with --simulated/);
  });

  it("selects the simulated machine by flag or environment variable, with its own settings", async () => {
    // Each start loads TypeScript through tsx for seconds: the three run side by side.
    const [byFlag, byEnv, real] = await Promise.all([
      hammer(["--simulated", "--help"]),
      hammer([...SETTINGS, "--sim-uuid", "nope"], { METAL_HAMMER_SIMULATED: "1" }),
      hammer([...SETTINGS, "--sim-uuid", "nope"]),
    ]);
    expect(byFlag.code).toBe(0);
    expect(byFlag.stdout).toContain("--sim-nics");
    expect(byEnv).toMatchObject({ code: 2, stderr: "metal-hammer: --sim-uuid must be the simulated machine's UUID\n" });
    expect(real).toMatchObject({ code: 2, stderr: 'metal-hammer: unknown flag "--sim-uuid"\n' });
  });

  it("reads the common settings the same way in both", () => {
    const env = { METAL_HAMMER_TOKEN: "t", METAL_HAMMER_PARTITION_ID: "p1" };
    const sim = loadSimHammerConfig(env, ["--sim-uuid", "0e1d2c3b-0000-4000-8000-000000000001", "--sim-nics", "eth0=0c:c4:7a:00:00:01@leaf01/swp1", "--alive-interval", "0.5"]);
    expect(sim).toMatchObject({ apiUrl: "http://127.0.0.1:8080", token: "t", partition: "p1", timing: { aliveMs: 500, crashRebootMs: 5_000 } });
    expect(sim.sim.nics).toEqual([{ name: "eth0", mac: "0c:c4:7a:00:00:01", neighbors: [{ hostname: "leaf01", port: "swp1" }] }]);
    expect(loadHammerConfig(env, ["--alive-interval", "0.5"])).toEqual({ apiUrl: "http://127.0.0.1:8080", token: "t", partition: "p1", timing: { aliveMs: 500, crashRebootMs: 5_000 } });
    expect(() => loadHammerConfig({}, [])).toThrow("--token ($METAL_HAMMER_TOKEN) is required");
  });
});
