import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestIdp, type TestIdp } from "../helpers/oidc-provider.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";
import { buildConsoleOnce, haveChromium, launchChromium, type PageGlobals, SKIP_REASON, screenshot } from "./browser.js";

/**
 * The console's "Sign in with <issuer>" in a real Chromium against a real
 * OpenID Connect provider: authorization code with PKCE in the browser, the
 * code exchanged by metal-api, the metal token kept like a pasted one.
 */
describe.skipIf(!haveChromium)(`the web console's OpenID Connect sign-in in Chromium${haveChromium ? "" : ` (${SKIP_REASON})`}`, () => {
  let idp: TestIdp;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const wait = { timeout: scaled(30_000) };

  beforeAll(async () => {
    const build = await buildConsoleOnce();
    idp = await startTestIdp();
    idp.addAccount("erin");
    idp.addAccount("frank");
    server = await startTestServer({ env: { METAL_WEB_DIR: build.outDir, METAL_OIDC_ISSUER: idp.issuer, METAL_OIDC_CLIENT_ID: idp.clientId } });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await idp?.close();
  });

  async function signInAtIdp(login: string) {
    page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/`);
    const button = page.getByRole("button", { name: `Sign in with ${new URL(idp.issuer).host}` });
    await button.waitFor(wait);
    if (login === "erin") await screenshot(page, "oidc-sign-in");
    await button.click();
    // The issuer's own sign-in page.
    await page.locator("input[name=login]").fill(login, wait);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  it("signs in through the issuer and keeps the metal token in the tab", async () => {
    await signInAtIdp("erin");
    await page.getByRole("button", { name: "Sign out" }).waitFor(wait);
    await screenshot(page, "oidc-signed-in");
    const token = await page.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem("metal-console.token"));
    expect(token).toMatch(/^ey/);
    // No code or verifier stays behind, and the address bar no longer carries the code.
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem("metal-console.oidc-pending"))).toBeNull();
    expect(page.url()).toBe(`${server.url}/`);
    expect(await page.content()).toContain("erin@example.test");
  });

  it("shows the issuer's refusal of a disabled account", async () => {
    idp.disable("frank");
    await signInAtIdp("frank");
    await page.getByRole("alert").filter({ hasText: "refused the sign-in" }).waitFor(wait);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem("metal-console.token"))).toBeNull();
  });
});
