import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** README.md and every docs/*.md, as paths from the repository root. */
const files = [
  "README.md",
  ...readdirSync(join(REPO, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

/** The text a reader sees as prose: fenced blocks and inline code hold examples, not links. */
const prose = (text: string) => text.replace(/^```[\s\S]*?^```$/gm, "").replace(/`[^`\n]*`/g, "");

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");

function anchorsIn(file: string): Set<string> {
  const text = readFileSync(join(REPO, file), "utf8").replace(/^```[\s\S]*?^```$/gm, "");
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1]!)));
}

/** Relative link targets of a Markdown file: `[text](target)`, `![alt](target)` and `src="target"`. */
function linksIn(file: string): string[] {
  const text = prose(readFileSync(join(REPO, file), "utf8"));
  const targets = [...text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g), ...text.matchAll(/\bsrc="([^"]+)"/g)].map((m) => m[1]!);
  return targets.filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

/** What is wrong with one link of `file`, or undefined when it resolves. */
function problem(file: string, target: string): string | undefined {
  const [path, anchor] = target.split("#", 2) as [string, string | undefined];
  const resolved = path === "" ? file : relative(REPO, join(REPO, dirname(file), decodeURIComponent(path)));
  if (resolved.startsWith("..")) return `${file}: ${target} leaves the repository`;
  if (!existsSync(join(REPO, resolved))) return `${file}: ${target} -> ${resolved} does not exist`;
  if (anchor && resolved.endsWith(".md") && statSync(join(REPO, resolved)).isFile() && !anchorsIn(resolved).has(anchor)) {
    return `${file}: ${target} -> ${resolved} has no heading #${anchor}`;
  }
  return undefined;
}

/** Repository paths the manual names in inline code (`server/app.ts`, `edge/lab/`), leaving out patterns and placeholders. */
function codePathsIn(file: string): string[] {
  const text = readFileSync(join(REPO, file), "utf8").replace(/^```[\s\S]*?^```$/gm, "");
  return [...text.matchAll(/`((?:server|edge|cli|client|test|gen|proto|bin|docs|\.ci)\/[^`\s]*)`/g)].map((m) => m[1]!.replace(/:\d+$/, "")).filter((p) => !/[*[<>{}…]/.test(p));
}

describe("documentation links", () => {
  it("finds the manual's links (the check has something to check)", () => {
    expect(files).toContain("docs/security.md");
    expect(linksIn("README.md").length).toBeGreaterThan(5);
    expect(files.flatMap(codePathsIn).length).toBeGreaterThan(20);
  });

  it("resolves every relative link of README.md and docs/*.md, to a file and, with #, to one of its headings", () => {
    const problems = files.flatMap((f) => linksIn(f).map((t) => problem(f, t))).filter((p) => p !== undefined);
    expect(problems).toEqual([]);
  });

  it("names only files and folders that exist (a moved file shows up here)", () => {
    const missing = files.flatMap((f) =>
      codePathsIn(f)
        .filter((p) => !existsSync(join(REPO, p)))
        .map((p) => `${f}: ${p}`),
    );
    expect(missing).toEqual([]);
  });

  it("keeps the README a README: at most 200 lines, linking every page of the manual", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    expect(readme.trimEnd().split("\n").length).toBeLessThanOrEqual(200);
    const linked = new Set(linksIn("README.md").map((t) => t.split("#")[0]));
    expect(files.filter((f) => f.startsWith("docs/") && !linked.has(f))).toEqual([]);
  });

  it("tells a broken link from a good one", () => {
    expect(problem("README.md", "docs/operations.md#configuration")).toBeUndefined();
    expect(problem("docs/api.md", "../proto")).toBeUndefined();
    expect(problem("README.md", "docs/no-such-page.md")).toMatch(/does not exist/);
    expect(problem("docs/api.md", "operations.md#no-such-heading")).toMatch(/no heading/);
    expect(problem("docs/api.md", "api.md")).toBeUndefined();
    expect(anchorOf("Walk-through: allocate a machine, watch it, free it")).toBe("walk-through-allocate-a-machine-watch-it-free-it");
  });
});
