/**
 * Makes docs/images/web-console.png, the README's picture of the console:
 * the machines page of a lab of ten simulated machines, four of them
 * allocated and phoned home, the others waiting, as the lab's operator sees it.
 * Run again after the console's look changes:
 *
 *   npx tsx test/web/readme-screenshot.ts
 */
import { mkdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { startLabUnderTest, TEST_LAB_TIMINGS } from "../e2e/lab-harness.js";
import { eventually } from "../helpers/eventually.js";
import { scaled } from "../helpers/timeouts.js";
import { buildConsoleOnce, haveChromium, launchChromium, type PageGlobals, SKIP_REASON } from "./browser.js";

const OUT = fileURLToPath(new URL("../../docs/images/web-console.png", import.meta.url));
/** A README picture, not a download: the page is mostly flat colour, so a PNG of this size stays well under it. */
const MAX_BYTES = 150 * 1024;
const MACHINES = 10;
const HOSTNAMES = ["web1", "web2", "db1", "ci1"];

if (!haveChromium) throw new Error(SKIP_REASON);
const build = await buildConsoleOnce();
const t = await startLabUnderTest(MACHINES, TEST_LAB_TIMINGS, { METAL_WEB_DIR: build.outDir });
const browser = await launchChromium();
try {
  await eventually("every lab machine to wait", async () => (await Promise.all(t.lab.machines.map((m) => t.events(m.uuid)))).every((e) => e.includes(T.WAITING)), scaled(60_000));
  // The tenant allocates a few machines, as `metalctl machine create` would; both install and phone home.
  const tenant = createClient(MachineService, createTransport({ baseUrl: t.lab.apiUrl, protocol: "connect", token: t.lab.tenantToken }));
  const ids: string[] = [];
  for (const hostname of HOSTNAMES) {
    const { machine } = await tenant.create({ project: LAB.project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname, networks: [t.lab.projectNetwork] });
    ids.push(machine!.id);
  }
  for (const id of ids) await eventually(`${id} to phone home`, async () => (await t.events(id)).includes(T.PHONED_HOME), scaled(60_000));

  const context = await browser.newContext({ viewport: { width: 1200, height: 700 } });
  await context.addInitScript((token) => (globalThis as unknown as PageGlobals).sessionStorage.setItem("metal-console.token", token), t.lab.adminToken);
  const page = await context.newPage();
  await page.goto(`${t.lab.apiUrl}/#/machines`);
  await page.waitForFunction(
    (n) => Array.from((globalThis as unknown as PageGlobals).document.querySelectorAll("table.machines tbody tr")).filter((tr) => tr.textContent?.includes("Phoned Home")).length === n,
    HOSTNAMES.length,
    { timeout: scaled(30_000) },
  );
  mkdirSync(new URL("../../docs/images/", import.meta.url), { recursive: true });
  await page.screenshot({ path: OUT });
  const bytes = statSync(OUT).size;
  if (bytes > MAX_BYTES) throw new Error(`${OUT} is ${bytes} bytes, more than ${MAX_BYTES}`);
  console.log(`docs/images/web-console.png: ${(bytes / 1024).toFixed(1)} KiB`);
} finally {
  await browser.close();
  await t.dispose();
}
