/**
 * The command line as oclif wants it. oclif resolves a command from the words
 * at the front and rejects a flag there ("command --context not found"), yet a
 * user types global flags first (`metalctl --context prod machine list`), asks
 * for help with -h or `help machine`, and expects both to work.
 */

/** The global flags of every command (MetalCommand.baseFlags) that take a value, by every spelling. */
const GLOBAL_WITH_VALUE = new Set(["--api-url", "--token", "--context", "--output", "-o"]);
const GLOBAL_SWITCHES = new Set(["--no-headers", "--debug"]);

export interface NormalizedArgv {
  /** The arguments with global flags moved behind the command's words. */
  argv: string[];
  /** Help was asked for: -h, --help, `help ...`, or nothing at all. */
  help: boolean;
  /** The non-flag words, in order: the command id and its arguments, or the subject of help. */
  words: string[];
}

export function normalizeArgv(input: readonly string[]): NormalizedArgv {
  const end = input.indexOf("--");
  const head = end < 0 ? [...input] : input.slice(0, end);
  const tail = end < 0 ? [] : input.slice(end);
  let help = input.length === 0;
  if (head[0] === "help") {
    help = true;
    head.shift();
  }
  const rest: string[] = [];
  const globals: string[] = [];
  const words: string[] = [];
  for (let i = 0; i < head.length; i++) {
    const a = head[i]!;
    if (a === "-h" || a === "--help") {
      help = true;
      continue;
    }
    const name = a.startsWith("--") ? a.split("=")[0]! : a;
    if (GLOBAL_SWITCHES.has(name)) {
      globals.push(a);
      continue;
    }
    if (GLOBAL_WITH_VALUE.has(name)) {
      globals.push(a);
      // "--context=x" carries its value; "--context x" takes the next argument along.
      if (!a.includes("=") && i + 1 < head.length) globals.push(head[++i]!);
      continue;
    }
    if (/^-o\S/.test(a)) {
      globals.push(a);
      continue;
    }
    rest.push(a);
    if (!a.startsWith("-")) words.push(a);
  }
  const argv = [...rest, ...globals, ...(help ? ["--help"] : []), ...tail];
  return { argv, help, words };
}
