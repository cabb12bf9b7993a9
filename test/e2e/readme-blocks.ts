import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./lab-process.js";

/** One file of the documentation: its path from the repository root and its text. */
export interface ManualFile {
  file: string;
  text: string;
}

/** The repository's README (README_FILE names another copy, to check these tests against a README known to be wrong). */
export const README = readFileSync(process.env.README_FILE ?? join(REPO, "README.md"), "utf8");

/** The manual's folder (DOCS_DIR names another copy, as README_FILE does for the README). */
const DOCS = process.env.DOCS_DIR ?? join(REPO, "docs");

/**
 * README.md first, then every docs/*.md: the commands a user is shown, wherever
 * the manual shows them, are held to the same checks.
 */
export const MANUAL: ManualFile[] = [
  { file: "README.md", text: README },
  ...readdirSync(DOCS)
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => ({ file: `docs/${f}`, text: readFileSync(join(DOCS, f), "utf8") })),
];

/** The first match of `re` in the manual (README first). */
export function manualMatch(re: RegExp): RegExpExecArray | null {
  for (const { text } of MANUAL) {
    const m = re.exec(text);
    if (m) return m;
  }
  return null;
}

/** The fenced code block that follows `marker` in the first manual file that has it: its file, language and lines. */
export function blockAfter(marker: string): { file: string; lang: string; lines: string[] } {
  const doc = MANUAL.find((d) => d.text.includes(marker));
  if (!doc) throw new Error(`neither README nor docs/ has "${marker}"`);
  const m = /```(\w*)\n([\s\S]*?)\n```/.exec(doc.text.slice(doc.text.indexOf(marker)));
  if (!m) throw new Error(`${doc.file} has no code block after "${marker}"`);
  return { file: doc.file, lang: m[1]!, lines: m[2]!.split("\n") };
}

/** Every fenced code block of the README and docs/, with its file and the line number of its first line. */
export function allBlocks(): { file: string; lang: string; line: number; lines: string[] }[] {
  const out: { file: string; lang: string; line: number; lines: string[] }[] = [];
  for (const { file, text } of MANUAL) {
    const re = /^```(\w*)\n([\s\S]*?)\n```$/gm;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      out.push({ file, lang: m[1]!, line: text.slice(0, m.index).split("\n").length + 1, lines: m[2]!.split("\n") });
    }
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
