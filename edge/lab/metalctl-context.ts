import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parse, stringify } from "yaml";

/**
 * Where the lab keeps its metalctl contexts: in its data directory, where
 * metalctl finds them on its own while the user has no config file of their
 * own (cli/config-file.ts). Never the user's file unless they ask for it: two
 * checkouts would overwrite each other, and a stopped lab would leave the
 * user's current context pointing at a dead token.
 */
export const labMetalctlConfigPath = (dataDir: string): string => join(dataDir, "metalctl", "config.yaml");

/** The user's own metalctl file (METALCTL_CONFIG aside), as metalctl resolves it. */
export function userMetalctlConfigPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "metalctl", "config.yaml");
}

/**
 * Whether a metalctl started in `cwd` with `env` reads `path` without being
 * told: it reads METALCTL_CONFIG, else the user's file when there is one,
 * else $METAL_DATA_DIR/metalctl/config.yaml (default .metal/).
 */
export function metalctlFinds(path: string, env: NodeJS.ProcessEnv, cwd: string): boolean {
  if (env.METALCTL_CONFIG) return resolve(cwd, env.METALCTL_CONFIG) === resolve(path);
  if (existsSync(userMetalctlConfigPath(env))) return false;
  return resolve(cwd, env.METAL_DATA_DIR || ".metal", "metalctl", "config.yaml") === resolve(path);
}

export interface MetalctlContext {
  url: string;
  token: string;
  project?: string;
  /** host:port of metal-console, for `metalctl machine console`. */
  console?: string;
  /** A known_hosts file with the console's host key: metalctl's `machine console` gives it to ssh. */
  knownHosts?: string;
  /** A private key the lab generated because the user has no default one (for `machine console -i`; its .pub for allocations). */
  sshKey?: string;
}

/**
 * Adds (or replaces) the given contexts, keeping every other context. The
 * current context stays as the user chose it (`metalctl context use`) when
 * it still exists; else it becomes `fallback`.
 */
export async function writeMetalctlContexts(path: string, fallback: string, add: Record<string, MetalctlContext>): Promise<void> {
  let doc: { current?: string; previous?: string; contexts?: Record<string, unknown> } = {};
  try {
    doc = (parse(await readFile(path, "utf8")) ?? {}) as typeof doc;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const contexts = { ...(doc.contexts ?? {}), ...add };
  const current = doc.current && doc.current in contexts ? doc.current : fallback;
  const previous = doc.previous && doc.previous in contexts && doc.previous !== current ? doc.previous : undefined;
  const out: Record<string, unknown> = { current, ...(previous ? { previous } : {}), contexts };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // The file holds tokens: 0600, and renamed into place so that metalctl never reads half of it.
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, stringify(out), { mode: 0o600 });
  await rename(tmp, path);
}
