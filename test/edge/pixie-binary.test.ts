import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { superviseDnsmasq } from "../../edge/pixie/dnsmasq.js";
import { eventually } from "../helpers/eventually.js";
import { freePort } from "../helpers/free-port.js";
import { scaled } from "../helpers/timeouts.js";

const dir = mkdtempSync(join(tmpdir(), "pixie-bin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ipxeDir(): string {
  const d = join(dir, "ipxe");
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, "undionly.kpxe"), "bios");
  writeFileSync(join(d, "ipxe.efi"), "efi");
  return d;
}

/**
 * Stands in for dnsmasq: notes each start and stop in a file, exits with 1
 * on its first start (a crash) and runs until SIGTERM after that.
 */
const FAKE_DNSMASQ = `
const fs = require("node:fs");
const [journal, ...args] = process.argv.slice(2);
const conf = args.find((a) => a.startsWith("--conf-file=")).slice("--conf-file=".length);
const starts = fs.existsSync(journal) ? fs.readFileSync(journal, "utf8").split("\\n").filter((l) => l.startsWith("start")).length : 0;
// Listening for SIGTERM before saying it started: the test stops pixie as soon as it reads "start".
process.on("SIGTERM", () => { fs.appendFileSync(journal, "stop\\n"); process.exit(0); });
fs.appendFileSync(journal, "start " + args.join(" ") + " " + (fs.readFileSync(conf, "utf8").includes("dhcp-range=10.0.0.0,proxy") ? "proxy" : "?") + "\\n");
process.stderr.write("dnsmasq: started\\n");
if (starts === 0) process.exit(1);
setInterval(() => {}, 1000);
`;

describe("dnsmasq supervision", () => {
  it("runs dnsmasq in the foreground with pixie's config, restarts it when it dies, and stops it on close", async () => {
    const fake = join(dir, "fake-dnsmasq.js");
    const journal = join(dir, "journal");
    writeFileSync(fake, FAKE_DNSMASQ);
    const logs: string[] = [];
    const d = superviseDnsmasq({
      iface: "br0",
      network: "10.0.0.0",
      bootScriptUrl: "http://10.0.0.1:8081/ipxe/boot.ipxe",
      ipxeDir: ipxeDir(),
      stateDir: join(dir, "state"),
      command: [process.execPath, fake, journal],
      policy: { initialMs: 20, maxMs: 50 },
      log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields)}`),
    });
    const lines = () => readFileSync(journal, "utf8").split("\n").filter(Boolean);
    await eventually("a second start after the crash", () => lines().filter((l) => l.startsWith("start")).length === 2);
    expect(lines()[0]).toBe(`start --keep-in-foreground --conf-file=${d.configPath} --log-facility=- proxy`);
    expect(logs.some((l) => l.includes("restarting dnsmasq") && l.includes("dnsmasq exited (code 1)"))).toBe(true);
    expect(logs.some((l) => l.includes("dnsmasq: started"))).toBe(true);
    await d.close();
    expect(lines().at(-1)).toBe("stop");
    expect(lines().filter((l) => l.startsWith("start"))).toHaveLength(2);
  });

  it("a dnsmasq that cannot start is retried and named, not fatal", async () => {
    const logs: string[] = [];
    const d = superviseDnsmasq({
      iface: "br0",
      network: "10.0.0.0",
      bootScriptUrl: "http://10.0.0.1:8081/ipxe/boot.ipxe",
      ipxeDir: ipxeDir(),
      stateDir: join(dir, "state2"),
      command: [join(dir, "no-such-dnsmasq")],
      policy: { initialMs: 20, maxMs: 50 },
      log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields)}`),
    });
    await eventually("two failed starts", () => logs.filter((l) => l.includes("dnsmasq could not start") && l.includes("ENOENT")).length >= 2);
    await d.close();
  });
});

describe("the pixie binary", () => {
  it("--help names its settings; a missing one is an error that says which", () => {
    const help = spawnSync(process.execPath, ["bin/pixie.js", "--help"], { encoding: "utf8" });
    expect(help.status).toBe(0);
    for (const s of ["--interface", "--dhcp-network", "--ipxe-dir", "--state-dir", "--public-url", "--no-dhcp", "$METAL_PIXIE_TOKEN"]) expect(help.stdout).toContain(s);
    const bad = spawnSync(process.execPath, ["bin/pixie.js", "--partition", "px", "--token", "t"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--interface/);
  });

  it(
    "--no-dhcp serves the iPXE scripts over HTTP and stops on SIGTERM",
    async () => {
      const port = await freePort();
      const proc = spawn(process.execPath, ["bin/pixie.js", "--no-dhcp", "--listen", `127.0.0.1:${port}`, "--partition", "px", "--api-url", "http://127.0.0.1:1"], {
        env: { ...process.env, METAL_PIXIE_TOKEN: "secret-infra-token" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      proc.stderr!.on("data", (c: Buffer) => void (stderr += c.toString()));
      const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
      try {
        await eventually("pixie to serve", () => stderr.includes('"msg":"pixie: serving"'), scaled(30_000));
        const res = await fetch(`http://127.0.0.1:${port}/ipxe/boot.ipxe`);
        expect(res.status).toBe(200);
        expect(await res.text()).toContain(`chain --autofree http://127.0.0.1:${port}/ipxe/`);
      } finally {
        proc.kill("SIGTERM");
      }
      expect(await exited).toBe(0);
      expect(stderr).not.toContain("secret-infra-token");
    },
    scaled(60_000),
  );
  it(
    "with proxy DHCP it writes dnsmasq's config for its own URL, runs dnsmasq, and stops it on SIGTERM",
    async () => {
      const port = await freePort();
      // A stand-in dnsmasq named by --dnsmasq: an executable that notes how it was started and stopped.
      const fake = join(dir, "dnsmasq");
      const journal = join(dir, "binary-journal");
      writeFileSync(fake, `#!${process.execPath}\nprocess.argv.splice(2, 0, ${JSON.stringify(journal)});\n${FAKE_DNSMASQ.replace("if (starts === 0) process.exit(1);", "")}`, { mode: 0o755 });
      const state = join(dir, "binary-state");
      const args = ["--listen", `127.0.0.1:${port}`, "--partition", "px", "--interface", "br0", "--dhcp-network", "10.0.0.0", "--state-dir", state, "--ipxe-dir", ipxeDir(), "--dnsmasq", fake];
      const proc = spawn(process.execPath, ["bin/pixie.js", ...args], { env: { ...process.env, METAL_PIXIE_TOKEN: "secret-infra-token" }, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      proc.stderr!.on("data", (c: Buffer) => void (stderr += c.toString()));
      const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
      try {
        await eventually("dnsmasq to be started", () => existsSync(journal) && readFileSync(journal, "utf8").startsWith("start "), scaled(30_000));
        const conf = readFileSync(join(state, "dnsmasq.conf"), "utf8");
        expect(conf).toContain(`dhcp-boot=tag:ipxe,http://127.0.0.1:${port}/ipxe/boot.ipxe`);
        expect(conf).toContain("interface=br0");
        expect(readFileSync(join(state, "tftp", "undionly.kpxe"), "utf8")).toBe("bios");
      } finally {
        proc.kill("SIGTERM");
      }
      expect(await exited).toBe(0);
      expect(readFileSync(journal, "utf8").split("\n").filter(Boolean).at(-1)).toBe("stop");
      expect(stderr).not.toContain("secret-infra-token");
    },
    scaled(60_000),
  );
});
