import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, Config, Help, type Interfaces, Plugin, run, settings } from "@oclif/core";
import { normalizeArgv } from "./argv.js";
import { loadCommands, modulesFor } from "./commands.js";
import { describeError, Exit } from "./errors.js";
import { type Io, io, processIo, withIo } from "./io.js";

const loaded = new Map<string, Promise<Config>>();

/**
 * oclif's configuration built in code: the command map is one explicit module
 * (no scan of a commands directory at start-up), and nothing is read from
 * package.json, which belongs to the whole repository.
 */
function config(argv: string[]): Promise<Config> {
  // The sources already run under tsx; oclif must not look for compiled or ts-node paths.
  settings.enableAutoTranspile = false;
  const modules = modulesFor(argv);
  const key = modules.join(",");
  let c = loaded.get(key);
  if (!c) {
    c = load(modules);
    loaded.set(key, c);
  }
  return c;
}

async function load(modules: string[]): Promise<Config> {
  const commands = await loadCommands(modules);
  {
    const root = dirname(fileURLToPath(import.meta.url));
    const plugin = new Plugin({
      root,
      isRoot: true,
      pjson: {
        name: "metalctl",
        version: "0.1.0",
        type: "module",
        oclif: {
          bin: "metalctl",
          dirname: "metalctl",
          topicSeparator: " ",
          additionalHelpFlags: ["-h"],
          commands: { strategy: "explicit", target: "./commands.ts", identifier: "COMMANDS" },
          topics: {
            machine: { description: "allocate, free and operate machines" },
            firewall: { description: "allocate and list firewalls" },
            network: { description: "networks and their IPs" },
            image: { description: "OS images" },
            size: { description: "machine sizes, reservations and image constraints" },
            partition: { description: "partitions and their capacity" },
            filesystemlayout: { description: "disk layouts" },
            switch: { description: "leaf switches (operators)" },
            tenant: { description: "tenants (masterdata)" },
            project: { description: "projects (masterdata)" },
            token: { description: "API tokens" },
            context: { description: "control planes and credentials in the config file" },
            "machine:power": { description: "power and boot order commands for a machine's BMC (operators)" },
            "machine:identify": { description: "the identify LED (operators)" },
            "network:ip": { description: "IP addresses of networks" },
            "size:reservation": { description: "machines of a size reserved for a project" },
            "size:imageconstraint": { description: "which images a size may run" },
            "switch:port": { description: "switch ports up or down" },
          },
        },
      } as never,
    });
    // The map is handed over in memory, so oclif never imports a command file itself (under vitest it could not load .ts).
    (plugin as unknown as { commandCache: unknown }).commandCache = commands;
    await plugin.load();
    const c = new Config({ root, plugins: new Map([[plugin.name, plugin]]) });
    await c.load();
    return c;
  }
}

/** The last word of each alias that differs from the command's only in it: machine delete is also free, rm, destroy. */
export function verbAliases(c: { id: string; aliases?: string[]; hiddenAliases?: string[] }): string[] {
  const parent = c.id.split(":").slice(0, -1).join(":");
  const verbs = [...(c.aliases ?? []), ...(c.hiddenAliases ?? [])]
    .filter((a) => a.includes(":") || parent === "")
    .filter((a) => a.split(":").slice(0, -1).join(":") === parent)
    .map((a) => a.split(":").pop()!);
  return [...new Set(verbs)].filter((v) => v !== c.id.split(":").pop());
}

/** The other names of a topic, from its commands' aliases: machine is also machines and ms. */
function topicAliases(config: Config, topic: string): string[] {
  const depth = topic.split(":").length;
  const names = new Set<string>();
  for (const c of config.commands) {
    if (!c.id.startsWith(`${topic}:`)) continue;
    const own = c.id.split(":").slice(depth);
    for (const a of c.hiddenAliases ?? []) {
      const parts = a.split(":");
      // A sub-topic lists only its own other names (size rs), not its parent's (sizes reservation).
      const sameParent = parts.slice(0, depth - 1).join(":") === topic.split(":").slice(0, -1).join(":");
      if (sameParent && parts.length === c.id.split(":").length && parts.slice(depth).join(":") === own.join(":")) names.add(parts.slice(0, depth).join(" "));
    }
  }
  names.delete(topic.split(":").join(" "));
  return [...names].sort();
}

/** The topic a word (or words) name, under its own name or an alias: "ms" and "machines" are "machine". */
function topicNamed(config: Config, id: string): string | undefined {
  if (config.findTopic(id)) return id;
  const depth = id.split(":").length;
  for (const c of config.commands) {
    const parts = c.id.split(":");
    for (const a of c.hiddenAliases ?? []) {
      if (a.startsWith(`${id}:`) && a.split(":").length === parts.length) return parts.slice(0, depth).join(":");
    }
  }
  return undefined;
}

/** oclif's help, written to metalctl's output, with the aliases a user types listed beside each command and topic. */
class MetalHelp extends Help {
  override log(...args: string[]): void {
    io().stdout(`${args.join("\n")}\n`);
  }

  override formatCommands(commands: Command.Loadable[]): string {
    return super.formatCommands(
      commands.map((c) => {
        const also = verbAliases(c);
        const summary = c.summary ?? c.description?.split("\n")[0] ?? "";
        return { ...c, summary: also.length > 0 ? `${summary} (also: ${also.join(", ")})` : summary };
      }),
    );
  }

  override formatTopics(topics: Interfaces.Topic[]): string {
    return super.formatTopics(
      topics.map((t) => {
        const also = topicAliases(this.config as Config, t.name.split(" ").join(":"));
        return { ...t, description: also.length > 0 ? `${t.description ?? ""} (also: ${also.join(", ")})` : t.description };
      }),
    );
  }
}

/** Runs metalctl with the given arguments; resolves to the exit code (output went to `io`). */
export async function runMetalctl(input: string[], ioOverride: Io = processIo): Promise<number> {
  return withIo(ioOverride, async () => {
    try {
      const { argv, help, words } = normalizeArgv(input);
      const c = await config(argv);
      const id = words.join(":");
      // A topic alone ("metalctl machine") shows that topic's help, as --help does.
      const topic = words.length > 0 && !c.findCommand(id) ? topicNamed(c, id) : undefined;
      if (help || topic) {
        // oclif's help rewrites the ids of the commands it shows; it gets a configuration of its own, not the shared one.
        const helpConfig = await load(modulesFor([...argv, "--help"]));
        const subject = helpConfig.findCommand(id) ? words : (topicNamed(helpConfig, id)?.split(":") ?? words);
        await new MetalHelp(helpConfig).showHelp(subject);
        return 0;
      }
      await run(argv, c);
      return 0;
    } catch (err) {
      if (err instanceof Exit) return err.code;
      // Errors before a command ran: unknown command, bad top-level flags.
      const { line, code } = describeError(err);
      const unknown = /^command (\S+) not found/i.exec(line);
      if (unknown) {
        ioOverride.stderr(`unknown command "${unknown[1]!.replace(/\.$/, "").split(":").join(" ")}"; see metalctl --help\n`);
        return 2;
      }
      ioOverride.stderr(`${line}\n`);
      return code;
    }
  });
}
