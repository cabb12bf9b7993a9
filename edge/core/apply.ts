import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { DesiredConfig, LocalSettings } from "./config.js";
import { render, vlansFromInterfaces } from "./render.js";
import { CONFIG_PATHS, type ConfigKind, type SwitchOs } from "./switch-os.js";
import { validateConfig } from "./validate.js";

export interface ApplyResult {
  generation: number;
  /** False when the files already said the same (nothing was swapped or reloaded). */
  changed: boolean;
  durationMs: number;
  /** Empty on success; otherwise why the switch still runs the previous config. */
  error: string;
}

const KINDS: ConfigKind[] = ["interfaces", "frr"];

/**
 * Applies a desired config: render -> validate (structure, then the NOS's own
 * check on the candidate files) -> atomic swap (write a temporary file next
 * to the real one, rename over it) -> reload -> on a failed reload, put the
 * previous files back and reload those. Fail-closed: a config that does not
 * pass is never swapped in. One apply at a time (the caller serialises).
 */
export class ConfigApplier {
  constructor(
    private readonly os: SwitchOs,
    private readonly settings: LocalSettings,
  ) {}

  path(kind: ConfigKind): string {
    return join(this.os.root, CONFIG_PATHS[kind]);
  }

  async apply(config: DesiredConfig): Promise<ApplyResult> {
    const started = performance.now();
    const result = (changed: boolean, error = ""): ApplyResult => ({ generation: config.generation, changed, durationMs: performance.now() - started, error });
    const current = new Map<ConfigKind, string | undefined>();
    for (const k of KINDS) current.set(k, await readFile(this.path(k), "utf8").catch(() => undefined));

    const rendered = render(config, this.settings, vlansFromInterfaces(current.get("interfaces") ?? ""));
    const problems = validateConfig(config, this.settings, rendered);
    if (problems.length > 0) return result(false, `validation failed: ${problems.join("; ")}`);
    const next: Record<ConfigKind, string> = { frr: rendered.frr, interfaces: rendered.interfaces };
    const changing = KINDS.filter((k) => current.get(k) !== next[k]);
    if (changing.length === 0) return result(false);

    const temps: string[] = [];
    try {
      for (const k of changing) {
        const tmp = `${this.path(k)}.metal-core.tmp`;
        await mkdir(dirname(tmp), { recursive: true });
        await writeFile(tmp, next[k]);
        temps.push(tmp);
        await this.os.check(k, tmp);
      }
    } catch (err) {
      await Promise.all(temps.map((t) => unlink(t).catch(() => {})));
      return result(false, `validation failed: ${message(err)}`);
    }

    for (const k of changing) await rename(`${this.path(k)}.metal-core.tmp`, this.path(k));
    try {
      await this.os.reload();
      return result(true);
    } catch (err) {
      const restored = await this.restore(changing, current);
      return result(true, `reload failed: ${message(err)}; ${restored}`);
    }
  }

  /** Puts the previous files back (the same way: temp file + rename) and reloads them. */
  private async restore(kinds: readonly ConfigKind[], previous: ReadonlyMap<ConfigKind, string | undefined>): Promise<string> {
    try {
      for (const k of kinds) {
        const before = previous.get(k);
        if (before === undefined) {
          await unlink(this.path(k)).catch(() => {});
          continue;
        }
        const tmp = `${this.path(k)}.metal-core.tmp`;
        await writeFile(tmp, before);
        await rename(tmp, this.path(k));
      }
    } catch (err) {
      return `restoring the previous config failed too: ${message(err)}`;
    }
    try {
      await this.os.reload();
      return "the previous config is back in place";
    } catch (err) {
      return `the previous config is back in place, but reloading it failed: ${message(err)}`;
    }
  }
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
