import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAB } from "../../edge/lab/seed.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { type LabUnderTest, startLabUnderTest, TEST_LAB_TIMINGS } from "../e2e/lab-harness.js";
import { eventually } from "../helpers/eventually.js";
import { scaled } from "../helpers/timeouts.js";
import { buildConsoleOnce, haveChromium, launchChromium, type PageGlobals, SKIP_REASON, screenshot } from "./browser.js";

const MACHINES = 3;

/**
 * The console in a real Chromium against the lab: simulated machines that
 * PXE boot, wait, install and phone home through the real daemons. Every
 * wait is on a condition of the page, bounded by a scaled timeout.
 */
describe.skipIf(!haveChromium)(`the web console in Chromium against the lab${haveChromium ? "" : ` (${SKIP_REASON})`}`, () => {
  let t: LabUnderTest;
  let browser: Browser;
  let operator: BrowserContext;
  let page: Page;
  let allocated: string;
  const rows = () => page.locator("table.machines tbody tr");
  const wait = { timeout: scaled(30_000) };

  beforeAll(async () => {
    const build = await buildConsoleOnce();
    t = await startLabUnderTest(MACHINES, TEST_LAB_TIMINGS, { METAL_WEB_DIR: build.outDir });
    browser = await launchChromium();
    operator = await browser.newContext({ viewport: { width: 1500, height: 900 } });
    page = await operator.newPage();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.dispose();
  });

  async function signIn(p: Page, token: string): Promise<void> {
    await p.goto(`${t.lab.apiUrl}/`);
    await p.getByLabel("Token").fill(token);
    await p.getByRole("button", { name: "Sign in" }).click();
    await p.getByRole("button", { name: "Sign out" }).waitFor(wait);
  }

  it("refuses a wrong token with a clear message, then signs in with the lab's admin token", async () => {
    await page.goto(`${t.lab.apiUrl}/`);
    await page.getByLabel("Token").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "The token was not accepted" }).waitFor(wait);
    await screenshot(page, "sign-in");
    await signIn(page, t.lab.adminToken);
    // The token is kept for this tab only.
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem("metal-console.token"))).toBe(t.lab.adminToken);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).localStorage.length)).toBe(0);
  });

  it("shows the lab's machines live as they reach Waiting, with metalctl's columns", async () => {
    await page.waitForFunction(
      (n) => Array.from((globalThis as unknown as PageGlobals).document.querySelectorAll("table.machines tbody tr")).filter((tr) => tr.textContent?.includes("Waiting")).length === n,
      MACHINES,
      { timeout: scaled(60_000) },
    );
    const headers = await page.locator("table.machines thead th").allTextContents();
    expect(headers).toEqual(["ID", "", "Last Event", "When", "Age", "Hostname", "Project", "Size", "Image", "Partition", "Rack"]);
    expect(await rows().count()).toBe(MACHINES);
    for (const m of t.lab.machines) await page.locator(`tr[data-id="${m.uuid}"]`).filter({ hasText: LAB.size }).waitFor(wait);
    await screenshot(page, "machines");
  });

  it("allocates a waiting machine after asking, and the detail page follows it to Phoned Home", async () => {
    // An operator allocates into a project: choose it first.
    await page.getByLabel("Project").fill(LAB.project);
    await page.getByLabel("Project").press("Enter");
    allocated = t.lab.machines[0]!.uuid;
    await page.locator(`tr[data-id="${allocated}"] a`).click();
    await page.getByRole("heading", { name: `Machine ${allocated}` }).waitFor(wait);
    await page.getByRole("button", { name: "Allocate…" }).click();
    const form = page.getByRole("form", { name: "allocate" });
    await form.getByLabel("Hostname").fill("web1");
    await form
      .getByLabel("Network")
      .locator(`option[value="${t.lab.projectNetwork}"]`)
      .waitFor({ state: "attached", ...wait });
    await form.getByRole("button", { name: "Allocate…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText(`Allocate machine ${allocated} to project ${LAB.project}?`).waitFor(wait);
    await screenshot(page, "allocate-confirm");
    await dialog.getByRole("button", { name: "Allocate" }).click();
    await dialog.waitFor({ state: "detached", ...wait });
    // Installing, booting the new kernel, phoning home: each arrives through the Watch, no reload.
    await page
      .getByTestId("last-event")
      .filter({ hasText: "Phoned Home" })
      .waitFor({ timeout: scaled(60_000) });
    expect(await page.locator(".facts").textContent()).toContain("web1");
    expect((await t.machine(allocated)).allocation?.hostname).toBe("web1");
    await page.getByRole("cell", { name: "Phoned Home" }).first().waitFor(wait);
    await screenshot(page, "machine-detail");
  });

  it("opens the allocated machine's serial console from its page; a typed line reaches the machine and its answer shows", async () => {
    const machine = t.lab.machines.find((m) => m.uuid === allocated)!;
    await page.getByRole("link", { name: "Serial console" }).click();
    await page.getByRole("heading", { name: `Serial console of ${allocated} (web1)` }).waitFor(wait);
    // The terminal is its own chunk, fetched now; the console opens through the simulated BMC.
    await eventually("the console to reach the machine", () => machine.bmc.serial.attachments > 0, scaled(30_000));
    await page.locator(".xterm-helper-textarea").focus();
    await page.keyboard.type("hostname");
    await page.keyboard.press("Enter");
    await eventually("the line on the machine's serial console", () => machine.bmc.serial.typed.includes("hostname\r"), scaled(30_000));
    // The simulated OS echoes the line and answers with the allocation's hostname.
    await page.waitForFunction(() => /hostname\s*web1/.test((globalThis as unknown as PageGlobals).document.querySelector(".xterm-rows")?.textContent ?? ""), undefined, wait);
    await screenshot(page, "serial-console");
    // Leaving the page closes the console on the machine's side.
    await page.getByRole("link", { name: "back to the machine" }).click();
    await eventually("the console to close", () => machine.bmc.serial.attachments === 0, scaled(30_000));
  });

  it("gives a project viewer no console link, and shows the server's refusal on the console's URL", async () => {
    const viewerToken = (await t.admin(AdminTokens).create({ subject: "vera", roles: { projectRoles: { [LAB.project]: ProjectRole.VIEWER } } })).secret;
    const viewer = await browser.newContext({ viewport: { width: 1500, height: 900 } });
    try {
      const p = await viewer.newPage();
      await signIn(p, viewerToken);
      await p.goto(`${t.lab.apiUrl}/#/machines/${allocated}`);
      await p.getByRole("heading", { name: `Machine ${allocated}` }).waitFor(wait);
      expect(await p.getByRole("link", { name: "Serial console" }).count()).toBe(0);
      await p.goto(`${t.lab.apiUrl}/#/machines/${allocated}/console`);
      await p.getByRole("status").filter({ hasText: "console ended: permission denied" }).waitFor(wait);
      await screenshot(p, "serial-console-refused");
    } finally {
      await viewer.close();
    }
  });

  it("shows the project's networks and IPs and the partition's capacity", async () => {
    await page.goto(`${t.lab.apiUrl}/#/networks`);
    await page.getByRole("cell", { name: t.lab.projectNetwork }).first().waitFor(wait);
    // The allocation's IP is listed with its machine.
    await page.getByRole("row").filter({ hasText: allocated }).first().waitFor(wait);
    await screenshot(page, "networks");
    await page.goto(`${t.lab.apiUrl}/#/capacity`);
    const row = page.getByRole("row").filter({ hasText: LAB.size });
    await row.waitFor(wait);
    expect(await row.locator("td").nth(2).textContent()).toBe(String(MACHINES));
    await screenshot(page, "capacity");
  });

  it("shows the operator views: switches with their sync status, BMC commands, machine issues", async () => {
    await page.goto(`${t.lab.apiUrl}/#/switches`);
    await page
      .getByText(/synced \d+[smhd] ago/)
      .first()
      .waitFor(wait);
    expect(await page.getByRole("row").count()).toBeGreaterThan(1);
    await screenshot(page, "switches");
    await page.goto(`${t.lab.apiUrl}/#/bmc/${allocated}`);
    // A command is sent after asking, and its record shows up in the machine's list.
    await page.getByLabel("command").selectOption({ label: "LED On" });
    await page.getByRole("button", { name: "Send…" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "LED On" }).click();
    await page.getByRole("row").filter({ hasText: /LED/ }).first().waitFor(wait);
    await screenshot(page, "bmc-commands");
    await page.goto(`${t.lab.apiUrl}/#/issues`);
    await page.getByRole("heading", { name: "Machine issues" }).waitFor(wait);
    await page.waitForFunction(() => !(globalThis as unknown as PageGlobals).document.querySelector("main")?.textContent?.includes("Loading"), undefined, wait);
    expect(await page.getByRole("alert").count()).toBe(0);
    await screenshot(page, "machine-issues");
  });

  it("shows a tenant only their project (the allocated machine, not the waiting ones, no operator pages); a tenant allocates and frees", async () => {
    const tenant = await browser.newContext({ viewport: { width: 1500, height: 900 } });
    try {
      const p = await tenant.newPage();
      await signIn(p, t.lab.tenantToken);
      await p.locator(`tr[data-id="${allocated}"]`).filter({ hasText: "web1" }).waitFor(wait);
      expect(await p.locator("table.machines tbody tr").count()).toBe(1);
      expect(await p.getByLabel("Project").inputValue()).toBe(LAB.project);
      expect(await p.getByRole("link", { name: "Switches" }).count()).toBe(0);
      await p.goto(`${t.lab.apiUrl}/#/switches`);
      await p.getByText("No such page.").waitFor(wait);
      await p.goto(`${t.lab.apiUrl}/#/machines`);
      await p.locator("table.machines").waitFor(wait);
      await screenshot(p, "tenant-machines");
      // A reload opens the Watch the tab had open together with the token check; a stale one (an operator's "*")
      // is dropped once the checked session wants the project's, and the project's is kept for the next reload.
      await p.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.setItem("metal-console.watch", "*"));
      await p.reload();
      await p.locator("table.machines tbody tr").first().waitFor(wait);
      expect(await p.getByRole("alert").count()).toBe(0);
      expect(await p.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem("metal-console.watch"))).toBe(LAB.project);
      // A tenant allocates "a machine of this size here" (not a given one); it appears in the project's table.
      await p.getByRole("button", { name: "Allocate a machine" }).click();
      const form = p.getByRole("form", { name: "allocate" });
      await form
        .getByLabel("Size")
        .locator(`option[value="${LAB.size}"]`)
        .waitFor({ state: "attached", ...wait });
      await form.getByLabel("Hostname").fill("tenant1");
      await form.getByRole("button", { name: "Allocate…" }).click();
      await p.getByRole("dialog").getByText(`Allocate a ${LAB.size} machine in ${LAB.partition} to project ${LAB.project}?`).waitFor(wait);
      await p.getByRole("dialog").getByRole("button", { name: "Allocate", exact: true }).click();
      const row = p.locator("table.machines tbody tr").filter({ hasText: "tenant1" });
      await row.waitFor(wait);
      expect(await p.locator("table.machines tbody tr").count()).toBe(2);
      // The tenant frees it again from its detail page.
      await row.locator("a").click();
      await p.getByRole("button", { name: "Free…" }).click();
      await p.getByRole("dialog").getByRole("button", { name: "Free it" }).click();
      await p.getByText("was not found (or is not yours)").waitFor(wait);
      await p.goto(`${t.lab.apiUrl}/#/machines`);
      await p
        .locator("table.machines tbody tr")
        .filter({ hasText: "tenant1" })
        .waitFor({ state: "detached", ...wait });
    } finally {
      await tenant.close();
    }
  });

  it("locks the machine after asking (🔒, and it cannot be freed), then unlocks it", async () => {
    await page.goto(`${t.lab.apiUrl}/#/machines/${allocated}`);
    await page.getByRole("button", { name: "Lock…", exact: true }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Reason").fill("disk replacement");
    await dialog.getByRole("button", { name: "Lock", exact: true }).click();
    await dialog.waitFor({ state: "detached", ...wait });
    await page.getByRole("heading", { name: `Machine ${allocated} 🔒` }).waitFor(wait);
    expect(await page.getByRole("button", { name: "Free…" }).isDisabled()).toBe(true);
    await page.locator(".facts").filter({ hasText: "Locked: disk replacement" }).waitFor(wait);
    await screenshot(page, "machine-locked");
    await page.getByRole("button", { name: "Unlock…" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Unlock" }).click();
    await page.getByRole("button", { name: "Lock…", exact: true }).waitFor(wait);
    expect(await page.getByRole("button", { name: "Free…" }).isDisabled()).toBe(false);
  });

  it("reinstalls the machine after asking; it installs and phones home again", async () => {
    await page.getByRole("button", { name: "Reinstall…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText(`Reinstall machine ${allocated} with`).waitFor(wait);
    await dialog.getByRole("button", { name: "Reinstall" }).click();
    await dialog.waitFor({ state: "detached", ...wait });
    await eventually("a second Phoned Home after the reinstall", async () => (await t.events(allocated)).filter((e) => e === T.PHONED_HOME).length >= 2, scaled(60_000));
    await page.getByRole("cell", { name: "Phoned Home" }).nth(1).waitFor(wait);
    await page.locator(".facts").filter({ hasNotText: "reinstalling" }).waitFor(wait);
  });

  it("frees the machine after asking; it leaves the project and waits again", async () => {
    await page.goto(`${t.lab.apiUrl}/#/machines/${allocated}`);
    await page.getByRole("button", { name: "Free…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText(`Free machine ${allocated} (web1)?`).waitFor(wait);
    await dialog.getByRole("button", { name: "Free it" }).click();
    await dialog.waitFor({ state: "detached", ...wait });
    // The page drops the allocation as soon as the Watch reports the free.
    await page.locator(".facts").filter({ hasNotText: "web1" }).waitFor(wait);
    await eventually(
      "the freed machine to wait again",
      async () => {
        const m = await t.machine(allocated);
        return m.allocation === undefined && m.waiting && m.events?.log[0]?.type === T.WAITING;
      },
      scaled(60_000),
    );
    await page
      .getByTestId("last-event")
      .filter({ hasText: "Waiting" })
      .waitFor({ timeout: scaled(60_000) });
    await screenshot(page, "machine-freed");
  });

  it("on a reload with a kept session whose token is refused, shows the sign-in with the reason and forgets the token", async () => {
    const stale = await browser.newContext();
    try {
      const p = await stale.newPage();
      await signIn(p, t.lab.adminToken);
      // The same tab, its token now one the server does not know (as after a revocation).
      await p.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.setItem("metal-console.token", "revoked-token"));
      await p.reload();
      await p.getByRole("alert").filter({ hasText: "The token was not accepted" }).waitFor(wait);
      await p.getByLabel("Token").waitFor(wait);
      expect(await p.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.length)).toBe(0);
    } finally {
      await stale.close();
    }
  });

  it("signs out: the token is gone from the tab", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").waitFor(wait);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem("metal-console.token"))).toBeNull();
    await page.reload();
    await page.getByLabel("Token").waitFor(wait);
  });
});
