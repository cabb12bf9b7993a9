import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parse, stringify } from "yaml";

/**
 * Where metalctl reads its contexts (cli/config-file.ts resolves it the same
 * way). The lab writes the file itself: edge/ does not import cli/.
 */
export function metalctlConfigPath(env: NodeJS.ProcessEnv): string {
  if (env.METALCTL_CONFIG) return env.METALCTL_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "metalctl", "config.yaml");
}

export interface MetalctlContext {
  url: string;
  token: string;
  project?: string;
  /** host:port of metal-console, for `metalctl machine console`. */
  console?: string;
}

/**
 * Adds (or replaces) the given contexts and makes `current` the current one,
 * keeping every other context; the one that was current becomes `previous`,
 * so `metalctl context use -` goes back to it.
 */
export async function writeMetalctlContexts(path: string, current: string, add: Record<string, MetalctlContext>): Promise<void> {
  let doc: { current?: string; previous?: string; contexts?: Record<string, unknown> } = {};
  try {
    doc = (parse(await readFile(path, "utf8")) ?? {}) as typeof doc;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const contexts = { ...(doc.contexts ?? {}), ...add };
  const previous = doc.current && doc.current !== current ? doc.current : doc.previous;
  const out: Record<string, unknown> = { current, ...(previous ? { previous } : {}), contexts };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // The file holds tokens: 0600, and renamed into place so that metalctl never reads half of it.
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, stringify(out), { mode: 0o600 });
  await rename(tmp, path);
}
