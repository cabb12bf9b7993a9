import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./lab-process.js";

/** The repository's README (README_FILE names another copy, to check these tests against a README known to be wrong). */
export const README = readFileSync(process.env.README_FILE ?? join(REPO, "README.md"), "utf8");

/** The fenced code block that follows `marker` in the README: its language and lines. */
export function blockAfter(marker: string): { lang: string; lines: string[] } {
  const at = README.indexOf(marker);
  if (at === -1) throw new Error(`README has no "${marker}"`);
  const m = /```(\w*)\n([\s\S]*?)\n```/.exec(README.slice(at));
  if (!m) throw new Error(`README has no code block after "${marker}"`);
  return { lang: m[1]!, lines: m[2]!.split("\n") };
}

/** Every fenced code block of the README, with the line number of its first line. */
export function allBlocks(): { lang: string; line: number; lines: string[] }[] {
  const out: { lang: string; line: number; lines: string[] }[] = [];
  const re = /^```(\w*)\n([\s\S]*?)\n```$/gm;
  for (let m = re.exec(README); m; m = re.exec(README)) {
    out.push({ lang: m[1]!, line: README.slice(0, m.index).split("\n").length + 1, lines: m[2]!.split("\n") });
  }
  return out;
}

/** A console transcript: each `$ command` with the lines it printed. */
export function transcript(lines: string[]): { command: string; output: string[] }[] {
  const out: { command: string; output: string[] }[] = [];
  for (const l of lines) {
    if (l.startsWith("$ ")) out.push({ command: l.slice(2), output: [] });
    else if (l.trim() !== "") out.at(-1)?.output.push(l);
  }
  return out;
}
