/**
 * web/machine-rows.ts in Chromium: the machine table's body drawn from the
 * rows' text, the first time in one piece, then touching only rows whose
 * text changed, came, went or moved; every text escaped.
 */
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RowView } from "../../web/row-view.js";
import { haveChromium, launchChromium, SKIP_REASON } from "./browser.js";

const row = (id: string, host = `host-${id}`, status = ""): RowView => ({ id, cells: [id, status, "Phoned Home", "1m", "1d", host, "p", "s1", "img", "p1", "r1"], title: status ? "locked" : "" });

describe.skipIf(!haveChromium)(`the machine table's rows${haveChromium ? "" : ` (${SKIP_REASON})`}`, () => {
  let browser: Browser;
  let page: Page;
  beforeAll(async () => {
    // machine-rows.ts as a script of its own, exposing drawRows to the page.
    const out = await build({
      stdin: { contents: 'import { drawRows } from "./web/machine-rows.ts"; const drawn = new Map(); globalThis.draw = (rows) => drawRows(document.querySelector("tbody"), rows, drawn);', resolveDir: process.cwd(), loader: "ts" },
      bundle: true,
      format: "iife",
      write: false,
    });
    browser = await launchChromium();
    page = await browser.newPage();
    await page.setContent("<table><tbody></tbody></table>");
    await page.addScriptTag({ content: out.outputFiles[0]!.text });
  });
  afterAll(async () => {
    await browser?.close();
  });

  type Element = { dataset: Record<string, string>; textContent: string | null; outerHTML: string; querySelector(s: string): Element };
  type PageDraw = { draw(rows: RowView[]): void; document: { querySelectorAll(s: string): ArrayLike<Element> } };
  const draw = (rows: RowView[]) =>
    page.evaluate((rs) => {
      const g = globalThis as unknown as PageDraw;
      // Each row's cells present before this draw are marked: cells not redrawn show it afterwards.
      for (const td of Array.from(g.document.querySelectorAll("tbody td:first-child"))) td.dataset.kept = "yes";
      g.draw(rs);
      return Array.from(g.document.querySelectorAll("tbody tr")).map((tr) => ({ id: tr.dataset.id, kept: tr.querySelector("td").dataset.kept === "yes", html: tr.outerHTML }));
    }, rows);

  it("draws the rows in order, then keeps unchanged rows and redraws, adds, removes and moves only what differs", async () => {
    const first = await draw(["a", "b", "c", "d"].map((id) => row(id)));
    expect(first.map((r) => r.id)).toEqual(["a", "b", "c", "d"]);
    expect(first[0]!.html).toContain('<a href="#/machines/a">a</a>');

    // b's text changes, c goes, e comes, d moves to the front.
    const next = await draw([row("d"), row("a"), row("b", "host-renamed", "🔒"), row("e")]);
    expect(next.map((r) => r.id)).toEqual(["d", "a", "b", "e"]);
    expect(next.map((r) => r.kept)).toEqual([true, true, false, false]);
    expect(next[2]!.html).toContain("host-renamed");
    expect(next[2]!.html).toContain('title="locked"');

    // The same text again (new row objects): nothing is redrawn.
    const same = await draw([row("d"), row("a"), row("b", "host-renamed", "🔒"), row("e")]);
    expect(same.every((r) => r.kept)).toBe(true);

    expect(await draw([])).toEqual([]);
    expect((await draw([row("z")])).map((r) => r.id)).toEqual(["z"]);
  });

  it("shows markup in a machine's fields as text", async () => {
    const [drawn] = await draw([row('x"><img src=x>', "<b>bold</b>&amp;")]);
    expect(drawn!.id).toBe('x"><img src=x>');
    expect(drawn!.html).not.toContain("<img");
    expect(drawn!.html).not.toContain("<b>");
    expect(drawn!.html).toContain("&lt;b&gt;bold&lt;/b&gt;&amp;amp;");
    expect(drawn!.html).toContain(`href="#/machines/${encodeURIComponent('x"><img src=x>')}"`);
  });
});
