/**
 * What the console's browser tests share: Debian's Chromium through
 * playwright-core (never a downloaded browser), the console built once per
 * test worker into a scratch folder (never over dist/web), and the folder
 * screenshots are kept in.
 */
import { existsSync, mkdirSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { buildWeb, type WebBuild } from "../../scripts/build-web.js";

export const CHROMIUM = "/usr/bin/chromium";
export const haveChromium = existsSync(CHROMIUM);
/** Why the browser tests did not run, in their title when they are skipped. */
export const SKIP_REASON = `skipped: ${CHROMIUM} is missing (Debian: apt-get install chromium)`;

export const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/web/", import.meta.url));

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

let built: Promise<WebBuild> | undefined;

/** The console bundle, built once per worker (esbuild takes about a second). */
export function buildConsoleOnce(): Promise<WebBuild> {
  built ??= mkdtemp(join(tmpdir(), "metal-web-build-")).then((dir) => buildWeb(dir));
  return built;
}

/** Saves the page as test-artifacts/web/NAME.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * The few page globals the tests read inside the page. This project's TypeScript has no DOM library, and
 * page code must be a function (a string would be eval'd, which the console's CSP forbids):
 * `(globalThis as unknown as PageGlobals).document...`.
 */
export interface PageGlobals {
  readonly document: {
    querySelectorAll(selector: string): ArrayLike<{ readonly textContent: string | null }>;
    querySelector(selector: string): { readonly textContent: string | null } | null;
  };
  readonly sessionStorage: { readonly length: number; key(index: number): string | null; getItem(key: string): string | null; setItem(key: string, value: string): void };
  readonly localStorage: { readonly length: number };
  readonly performance: { getEntriesByName(name: string): { readonly startTime: number }[] };
}
