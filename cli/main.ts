import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Config, Plugin, run, settings } from "@oclif/core";
import { loadCommands, modulesFor } from "./commands.js";
import { describeError, Exit } from "./errors.js";
import { processIo, withIo, type Io } from "./io.js";

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

/** Runs metalctl with the given arguments; resolves to the exit code (output went to `io`). */
export async function runMetalctl(argv: string[], ioOverride: Io = processIo): Promise<number> {
  return withIo(ioOverride, async () => {
    try {
      await run(argv, await config(argv));
      return 0;
    } catch (err) {
      if (err instanceof Exit) return err.code;
      // Errors before a command ran: unknown command, bad top-level flags.
      const { line, code } = describeError(err);
      const unknown = /^command (\S+) not found/.exec(line);
      if (unknown) {
        ioOverride.stderr(`unknown command "${unknown[1]!.split(":").join(" ")}"; see metalctl --help\n`);
        return 2;
      }
      ioOverride.stderr(`${line}\n`);
      return code;
    }
  });
}
