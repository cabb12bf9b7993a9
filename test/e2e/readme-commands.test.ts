import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCommands, modulesFor } from "../../cli/commands.js";
import { REPO } from "./lab-process.js";
import { allBlocks, README } from "./readme-blocks.js";

/**
 * Every command line the README or docs/ show in a shell or console block must be
 * runnable as written: metalctl commands and their flags exist (with the
 * aliases a user types), the way to get a bare `metalctl` is in the README,
 * npm scripts and the lab's flags exist, files handed to tsx are there, and
 * no line keeps a placeholder a shell would take literally where the block
 * claims to be runnable (the Try-it block).
 */

interface Invocation {
  /** Where it is shown: `README.md:12`, `docs/metalctl.md:40`. */
  line: string;
  text: string;
  words: string[];
}

/** Shell-like words: quotes kept together, a comment dropped. */
function words(text: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[3]?.startsWith("#")) break;
    out.push(m[1] ?? m[2] ?? m[3]!);
  }
  return out;
}

/** The commands of one shell line: split at ; && || | and $( ), each with its words. */
function commandsOf(line: string): string[][] {
  const body = line.replace(/^\$ /, "");
  return body
    .split(/;|&&|\|\||\||\$\(|\)/)
    .map((part) => words(part.trim()))
    .filter((w) => w.length > 0);
}

/** The shell and console blocks' lines (a console block's commands are its `$ ` lines). */
function shellLines(): { line: string; text: string; block: string }[] {
  const out: { line: string; text: string; block: string }[] = [];
  for (const b of allBlocks()) {
    if (!["sh", "bash", "console", "shell"].includes(b.lang)) continue;
    b.lines.forEach((text, i) => {
      if (b.lang === "console" && !text.startsWith("$ ")) return;
      if (text.trim() === "" || text.trim().startsWith("#")) return;
      out.push({ line: `${b.file}:${b.line + i}`, text, block: b.lang });
    });
  }
  return out;
}

function invocations(program: string): Invocation[] {
  const out: Invocation[] = [];
  for (const { line, text } of shellLines()) {
    for (const w of commandsOf(text)) {
      const at = w[0] === "npx" ? 1 : 0;
      // A variable assignment before the command (TOKEN=x metalctl ...).
      let i = at;
      while (w[i] && /^[A-Z_]+=/.test(w[i]!) && w[i] !== program) i++;
      if (w[i] === program) out.push({ line, text, words: w.slice(i + 1) });
    }
  }
  return out;
}

const GLOBAL_VALUE_FLAGS = new Set(["--api-url", "--token", "--context", "--output", "-o"]);

describe("README and docs commands", () => {
  it("shows metalctl commands that exist, with flags they take", async () => {
    const commands = await loadCommands(modulesFor(["--help"]));
    const byName = new Map<string, (typeof commands)[string]>();
    for (const [id, c] of Object.entries(commands)) {
      for (const name of [id, ...((c as { aliases?: string[] }).aliases ?? []), ...((c as { hiddenAliases?: string[] }).hiddenAliases ?? [])]) byName.set(name, c);
    }
    const problems: string[] = [];
    const found = invocations("metalctl");
    expect(found.length).toBeGreaterThan(20);
    for (const inv of found) {
      const w = [...inv.words];
      // Global flags may come first.
      while (w[0]?.startsWith("-") && w[0] !== "--help" && w[0] !== "-h") w.splice(0, GLOBAL_VALUE_FLAGS.has(w[0]!) ? 2 : 1);
      const positional: string[] = [];
      for (const x of w) {
        if (x.startsWith("-")) break;
        positional.push(x);
      }
      let command: (typeof commands)[string] | undefined;
      let used = 0;
      for (let n = positional.length; n > 0 && !command; n--) {
        command = byName.get(positional.slice(0, n).join(":"));
        if (command) used = n;
      }
      const isHelp = w.includes("--help") || w.includes("-h") || positional[0] === "help";
      if (!command) {
        // `metalctl --help` and `metalctl machine --help` (a topic) are help, not commands.
        const topic = positional.length === 0 || [...byName.keys()].some((k) => k.startsWith(`${positional.join(":")}:`));
        if (!(isHelp && topic)) problems.push(`${inv.line}: "${inv.text.trim()}": no metalctl command "${positional.join(" ")}"`);
        continue;
      }
      const c = command as unknown as { flags?: Record<string, { char?: string }>; baseFlags?: Record<string, { char?: string }> };
      const flags = { ...(c.baseFlags ?? {}), ...(c.flags ?? {}) };
      const names = new Set(Object.entries(flags).flatMap(([n, f]) => [`--${n}`, ...(f.char ? [`-${f.char}`] : [])]));
      for (const x of w.slice(used)) {
        if (!x.startsWith("-") || x === "-" || x === "--help" || x === "-h") continue;
        const name = x.includes("=") ? x.slice(0, x.indexOf("=")) : x;
        if (!names.has(name)) problems.push(`${inv.line}: "${inv.text.trim()}": metalctl ${positional.slice(0, used).join(" ")} has no flag ${name}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("says how to get a bare metalctl on PATH wherever it uses one", () => {
    const bare = shellLines().filter(({ text }) => commandsOf(text).some((w) => w[0] === "metalctl"));
    expect(bare.length).toBeGreaterThan(0);
    // After npm install only `npx metalctl` works; `npm link` is what puts the bin on PATH.
    expect(README).toMatch(/`npm link`[^.]*bare\s+`metalctl`/);
  });

  it("shows npm scripts that exist, lab flags metal-lab takes and files that are there", () => {
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { scripts: Record<string, string> };
    const labHelp = execFileSync(process.execPath, [join(REPO, "bin/metal-lab.js"), "--help"], { encoding: "utf8" });
    const problems: string[] = [];
    for (const inv of invocations("npm")) {
      const [verb, ...rest] = inv.words;
      if (verb === "run" && !(rest[0]! in pkg.scripts)) problems.push(`${inv.line}: no npm script "${rest[0]}"`);
      if (verb === "start") {
        const dash = rest.indexOf("--");
        for (const f of dash === -1 ? [] : rest.slice(dash + 1).filter((x) => x.startsWith("--"))) {
          if (!labHelp.includes(`${f.split("=")[0]} `)) problems.push(`${inv.line}: metal-lab has no flag ${f}`);
        }
      }
    }
    for (const inv of invocations("tsx")) {
      const file = inv.words.find((x) => !x.startsWith("-"));
      if (file && !existsSync(join(REPO, file))) problems.push(`${inv.line}: no file ${file}`);
    }
    expect(problems).toEqual([]);
  });

  it("keeps no placeholder in the Try-it block, which a new user pastes as it is", () => {
    const start = README.indexOf("try it:");
    const block = /```sh\n([\s\S]*?)\n```/.exec(README.slice(start))![1]!;
    const code = block.split("\n").map((l) => l.split("  #")[0]!);
    expect(code.filter((l) => /<[a-z-]+>/.test(l))).toEqual([]);
  });
});
