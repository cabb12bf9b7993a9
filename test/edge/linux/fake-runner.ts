import { CommandError, type CommandResult, type CommandRunner, type RunOptions } from "../../../edge/hammer/linux/runner.js";

/** An answer to a command: what it prints and how it exits. */
export type Canned = Partial<CommandResult>;

/**
 * A CommandRunner that runs nothing: it records every call (argv and
 * options) and answers from canned outputs, matched by the argv's start
 * (the longest matching prefix wins, the latest of equally long ones). Unmatched commands succeed silently.
 */
export class FakeRunner implements CommandRunner {
  readonly calls: { argv: string[]; opts: RunOptions }[] = [];
  private readonly answers: { prefix: string[]; answer: Canned | ((argv: string[]) => Canned | Promise<Canned>) }[] = [];

  constructor(private readonly installed: Set<string> = new Set()) {}

  /** Answers commands starting with `prefix` (space-separated words) with `answer`. */
  on(prefix: string, answer: Canned | ((argv: string[]) => Canned | Promise<Canned>)): this {
    this.answers.push({ prefix: prefix.split(" "), answer });
    return this;
  }

  install(...commands: string[]): this {
    for (const c of commands) this.installed.add(c);
    return this;
  }

  has(command: string): boolean {
    return this.installed.has(command);
  }

  /** The argv of every call, joined by spaces: what tests compare. */
  get commands(): string[] {
    return this.calls.map((c) => c.argv.join(" "));
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    const copy = [...argv];
    this.calls.push({ argv: copy, opts });
    const match = [...this.answers]
      .reverse()
      .filter((a) => a.prefix.every((w, i) => copy[i] === w))
      .sort((a, b) => b.prefix.length - a.prefix.length)[0];
    const canned = typeof match?.answer === "function" ? await match.answer(copy) : (match?.answer ?? {});
    const result: CommandResult = { code: 0, signal: null, stdout: "", stderr: "", ...canned };
    if (result.code !== 0 && !opts.allowFailure) throw new CommandError(copy, result, result.signal ? "signal" : "exit");
    return result;
  }
}
