import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/** What metal-bmc remembers of one command it was given. */
export interface CommandRecord {
  /** "started" is written before the BMC is touched; a record still "started" after a restart was interrupted. */
  state: "started" | "finished";
  ok: boolean;
  result: string;
  /** Milliseconds since the epoch of the last change, for pruning. */
  at: number;
}

const VERSION = 1;

/**
 * The command ids metal-bmc has acted on, with their results, kept in a
 * small JSON file. Commands are delivered at least once (again after every
 * reconnect, until the result is stored), so the agent must remember what it
 * ran: a known id is never run again, its stored result is sent instead.
 * A command is recorded as started before it runs, so one interrupted by a
 * crash is reported as failed rather than run a second time — a reset or
 * power cycle done twice is worse than one not done.
 *
 * Records older than `keepMs` are dropped; the server gives up on commands
 * after minutes, so a day is plenty.
 */
export class CommandStore {
  private records = new Map<string, CommandRecord>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private readonly keepMs: number,
    private readonly maxRecords: number,
  ) {}

  static async open(file: string, opts: { keepMs?: number; maxRecords?: number } = {}): Promise<CommandStore> {
    const store = new CommandStore(file, opts.keepMs ?? 24 * 3_600_000, opts.maxRecords ?? 10_000);
    let text: string | undefined;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (text !== undefined) {
      const parsed = JSON.parse(text) as { version: number; commands: Record<string, CommandRecord> };
      if (parsed.version !== VERSION) throw new Error(`${file}: unknown state file version ${parsed.version}`);
      for (const [id, r] of Object.entries(parsed.commands)) {
        // Whatever ran when the agent stopped may or may not have reached the BMC; it is not run again.
        store.records.set(id, r.state === "started" ? { state: "finished", ok: false, result: "interrupted: metal-bmc stopped while running the command; not retried", at: r.at } : r);
      }
    }
    return store;
  }

  get(id: string): CommandRecord | undefined {
    return this.records.get(id);
  }

  get size(): number {
    return this.records.size;
  }

  /** Records that the command is about to run; false (and nothing changes) when the id is known already. */
  async start(id: string, now = Date.now()): Promise<boolean> {
    if (this.records.has(id)) return false;
    this.records.set(id, { state: "started", ok: false, result: "", at: now });
    await this.save(now);
    return true;
  }

  async finish(id: string, ok: boolean, result: string, now = Date.now()): Promise<void> {
    this.records.set(id, { state: "finished", ok, result, at: now });
    await this.save(now);
  }

  /** Writes a new file and renames it over the old one, so a crash leaves one or the other, never half of one. */
  private save(now: number): Promise<void> {
    this.prune(now);
    const body = JSON.stringify({ version: VERSION, commands: Object.fromEntries(this.records) });
    // Writes are chained: two renames racing could leave the older content last.
    const next = this.writing.then(async () => {
      await mkdir(dirname(this.file), { recursive: true });
      const tmp = `${this.file}.tmp`;
      await writeFile(tmp, body, { mode: 0o600 });
      await rename(tmp, this.file);
    });
    this.writing = next.catch(() => {});
    return next;
  }

  private prune(now: number): void {
    for (const [id, r] of this.records) if (r.state === "finished" && now - r.at > this.keepMs) this.records.delete(id);
    if (this.records.size > this.maxRecords) {
      const oldest = [...this.records.entries()].filter(([, r]) => r.state === "finished").sort((a, b) => a[1].at - b[1].at);
      for (const [id] of oldest.slice(0, this.records.size - this.maxRecords)) this.records.delete(id);
    }
  }
}
