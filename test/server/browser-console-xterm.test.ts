import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { runBmcAgent } from "../helpers/bmc-agent.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer, type TestServer } from "../helpers/server-launch.js";

/**
 * web/console/SerialConsole.tsx in Debian's Chromium (playwright-core, no
 * downloaded browser), on a page served with the web console's strict
 * Content-Security-Policy (no inline styles or scripts), talking Connect
 * over HTTP/1.1 through connect-web's fetch, as the web console does.
 */
const CHROMIUM = "/usr/bin/chromium";
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ARTIFACTS = join(ROOT, "test-artifacts", "web");

/** The page's script: the component alone, its client carrying the token the test hands it. */
const ENTRY = `
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ConsoleService } from "./gen/metal/api/v1/console_pb.js";
import { SerialConsole } from "./web/console/SerialConsole.js";
window.addEventListener("securitypolicyviolation", (e) => { (window.cspViolations ??= []).push(e.effectiveDirective); });
window.openConsole = (api, token, machineId, project) => {
  const bearer = (next) => (req) => { req.header.set("authorization", "Bearer " + token); return next(req); };
  const client = createClient(ConsoleService, createConnectTransport({ baseUrl: api, useBinaryFormat: true, interceptors: [bearer] }));
  createRoot(document.getElementById("root")).render(createElement(SerialConsole, { client, machineId, project, onEnded: (r) => { window.endedReason = r; } }));
};
`;

let server: TestServer;
let stopServer: () => Promise<void>;
let fixture: PartitionFixture;
let dir: string;
let leaseFile: string;
let stopAgent: () => Promise<void>;
let page: Server;
let pageUrl = "";
let browser: Browser;
let editor = "";
const sims = new SimBmcs();

async function allocatedMachine(): Promise<{ id: string; sim: SimMachineBmc }> {
  const booted = await fixture.bootMachine("r1");
  const sim = sims.add({ uuid: booted.id, ip: "10.5.0.10", mac: "aa:bb:cc:00:05:10" });
  await sims.writeLeases(leaseFile);
  const admin = server.client(AdminMachineService, server.adminToken);
  await eventually(`the BMC report of ${booted.id}`, async () => (await admin.get({ id: booted.id })).machine?.bmc?.address);
  await server.client(MachineService, editor).create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "xterm", networks: [fixture.primary.pb], machineId: booted.id });
  return { id: booted.id, sim };
}

/** Serves the bundle with the web console's policy; connect-src also names the API (another port in this test). */
async function servePage(out: string): Promise<Server> {
  const files: Record<string, [string, string]> = { "/app.js": ["stdin.js", "text/javascript"], "/app.css": ["stdin.css", "text/css"] };
  const s = createServer((req, res) => {
    const csp = `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ${server.url}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'`;
    const file = files[req.url ?? ""];
    if (file) {
      readFile(join(out, file[0])).then((body) => res.writeHead(200, { "content-type": file[1], "content-security-policy": csp }).end(body));
      return;
    }
    res
      .writeHead(200, { "content-type": "text/html", "content-security-policy": csp })
      .end('<!doctype html><html><head><link rel="stylesheet" href="/app.css"><script type="module" src="/app.js"></script></head><body><div id="root"></div></body></html>');
  });
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  return s;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) return;
  dir = await mkdtemp(join(tmpdir(), "browser-console-xterm-"));
  leaseFile = join(dir, "dhcpd.leases");
  await build({
    stdin: { contents: ENTRY, resolveDir: ROOT, loader: "js" },
    bundle: true,
    format: "esm",
    platform: "browser",
    jsx: "automatic",
    outdir: join(dir, "out"),
    define: { "process.env.NODE_ENV": '"production"' },
    tsconfig: join(ROOT, "web", "tsconfig.json"),
    logLevel: "warning",
  });
  // The page's origin must be known to the API's CORS settings before it starts.
  page = await servePage(join(dir, "out"));
  pageUrl = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
  ({ server, stop: stopServer } = await launchServer({ consolePollMs: 200, env: { METAL_CORS_ORIGINS: pageUrl, METAL_DB_POOL_SIZE: "10", MASTERDATA_DB_POOL_SIZE: "4" }, dropInBackground: true }));
  fixture = await setUpPartition(server);
  editor = (await server.client(AdminTokens, server.adminToken).create({ subject: "olga", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  stopAgent = runBmcAgent({ url: server.url, token: fixture.infraToken, agent: "bmc-browser-xterm", dir, leaseFile, sims }).stop;
  await eventually("metal-bmc offers relays", () => server.app.relayBroker.agentsOf("p1").length > 0);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

afterAll(async () => {
  await browser?.close();
  fixture?.stopAll();
  await stopAgent?.();
  await stopServer?.();
  page?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const screenText = (p: Page) =>
  p
    .locator(".xterm-rows")
    .textContent()
    .then((t) => t ?? "");

describe.skipIf(!existsSync(CHROMIUM))("SerialConsole (xterm.js) in Chromium under the web console's CSP", () => {
  it("opens the console, types a line that reaches the machine, shows its answer, and says why the console ended", async () => {
    const m = await allocatedMachine();
    const p = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    await p.goto(pageUrl);
    // Page code as strings: this file is type-checked without the DOM library.
    await p.evaluate(`window.openConsole(${JSON.stringify(server.url)}, ${JSON.stringify(editor)}, ${JSON.stringify(m.id)}, "pb")`);
    await eventually("the console to open", () => m.sim.serial.attachments > 0);
    await p.locator(".xterm-helper-textarea").focus();
    await p.keyboard.type("uname");
    await p.keyboard.press("Enter");
    await eventually("the line on the machine", () => m.sim.serial.typed.includes("uname\r"));
    await eventually("the answer on the screen", async () => (await screenText(p)).includes("Linux"));

    // xterm writes <style> elements and style attributes that the policy blocks (the browser reports them);
    // the component mirrors them through the CSSOM, so the terminal keeps its geometry and colours.
    const styling = (await p.evaluate(`({
      violations: window.cspViolations ?? [],
      mirroredRules: document.adoptedStyleSheets.reduce((n, s) => n + s.cssRules.length, 0),
      rowHeight: document.querySelector(".xterm-rows > div")?.getBoundingClientRect().height ?? 0,
    })`)) as { violations: string[]; mirroredRules: number; rowHeight: number };
    expect(styling.violations).toContain("style-src-elem");
    expect(styling.mirroredRules).toBeGreaterThan(0);
    expect(styling.rowHeight).toBeGreaterThan(5);
    // The terminal was fitted to its box (wider than 80 columns at this viewport): the size reached the machine.
    await eventually("a resize on the machine", () => m.sim.serial.windowSizes.some((w) => w.columns > 80));

    await server.client(MachineService, editor).delete({ id: m.id, project: "pb" });
    await p.getByText(`console ended: machine "${m.id}" was freed; closing the console`).waitFor();
    await mkdir(ARTIFACTS, { recursive: true });
    await p.screenshot({ path: join(ARTIFACTS, "serial-console.png") });
    await p.close();
  });
});
