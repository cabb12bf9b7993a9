import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parse, stringify } from "yaml";

/** One control plane and who we are there. */
export interface Context {
  url?: string;
  token?: string;
  /** Default for --project of tenant-scoped commands. */
  project?: string;
  /** host:port of metal-console, for `machine console`. */
  console?: string;
  /** A known_hosts file with metal-console's host key (the lab writes one), used by `machine console` beside the user's own. */
  knownHosts?: string;
  /** A private key for `machine console` when -i is not given; its `.pub` goes into allocations when the user has no default key. */
  sshKey?: string;
}

export interface ConfigFile {
  current?: string;
  previous?: string;
  contexts: Record<string, Context>;
}

export type Env = Record<string, string | undefined>;

/**
 * METALCTL_CONFIG, else $XDG_CONFIG_HOME/metalctl/config.yaml (default
 * ~/.config) when it exists, else the contexts a lab keeps in its data
 * directory ($METAL_DATA_DIR/metalctl/config.yaml, default .metal/): a lab
 * started in this checkout works without touching the user's own file.
 */
export function configPath(env: Env): string {
  if (env.METALCTL_CONFIG) return env.METALCTL_CONFIG;
  const user = join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config"), "metalctl", "config.yaml");
  if (existsSync(user)) return user;
  const lab = labConfigPath(env);
  return existsSync(lab) ? lab : user;
}

/** Where a lab keeps its metalctl contexts: beside its admin token. */
export const labConfigPath = (env: Env): string => join(env.METAL_DATA_DIR || ".metal", "metalctl", "config.yaml");

export function readConfig(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { contexts: {} };
    throw err;
  }
  const doc = (parse(text) ?? {}) as Partial<ConfigFile>;
  return { current: doc.current, previous: doc.previous, contexts: doc.contexts ?? {} };
}

/** Written to a temporary file and renamed, mode 0600: the file holds tokens, and a crash must not leave half of it. */
export function writeConfig(path: string, config: ConfigFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, stringify(config), { mode: 0o600 });
  renameSync(tmp, path);
}
