import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type DescMessage, type DescService, type MessageShape, toJson } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { Command, Flags, type Interfaces } from "@oclif/core";
import { retryReads } from "../client/retry.js";
import { createTransport } from "../client/transport.js";
import { type ConfigFile, type Context, configPath, readConfig, writeConfig } from "./config-file.js";
import { readText } from "./documents.js";
import { describeError, Exit } from "./errors.js";
import { io } from "./io.js";
import { type Column, type OutputFormat, renderData, renderTable, sortRows, UsageError } from "./output.js";

export type MetalFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof MetalCommand)["baseFlags"] & T["flags"]>;
export type MetalArgs<T extends typeof Command> = Interfaces.InferredArgs<T["args"]>;

export const DEFAULT_API_URL = "http://127.0.0.1:8080";

/**
 * The control plane's URL from what a user typed: "host:port" means
 * http://host:port; anything but http(s) is refused, naming where it came from.
 */
export function apiUrl(value: string, source: string): string {
  const text = value.trim();
  const withScheme = text.includes("://") ? text : `http://${text}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    throw new UsageError(`${source}: "${value}" is not a URL like http://127.0.0.1:8080`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new UsageError(`${source}: "${value}" is not an http:// or https:// URL`);
  if (!parsed.hostname) throw new UsageError(`${source}: "${value}" names no host`);
  return withScheme.replace(/\/+$/, "");
}

/** Where a command talks to, after flags, environment and the config file had their say. */
export interface Target {
  url: string;
  token: string | undefined;
  project: string | undefined;
  context: string | undefined;
}

/**
 * The base of every metalctl command: global flags, the resolved target,
 * typed clients, output in the four formats, and errors as one line plus an
 * exit code by class.
 */
export abstract class MetalCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    "api-url": Flags.string({ helpGroup: "GLOBAL", description: "control plane URL (env METALCTL_API_URL)" }),
    token: Flags.string({ helpGroup: "GLOBAL", description: "bearer token (env METALCTL_API_TOKEN)" }),
    context: Flags.string({ helpGroup: "GLOBAL", description: "context of the config file to use instead of the current one" }),
    output: Flags.string({ helpGroup: "GLOBAL", char: "o", description: "output format", options: ["table", "wide", "json", "yaml"] }),
    "no-headers": Flags.boolean({ helpGroup: "GLOBAL", description: "omit table headers" }),
    debug: Flags.boolean({ helpGroup: "GLOBAL", description: "print each request and its response status to stderr" }),
  };

  protected flags!: MetalFlags<T>;
  protected args!: MetalArgs<T>;
  private transport?: Transport;
  private resolved?: Target;

  override async init(): Promise<void> {
    await super.init();
    const ctor = this.ctor as typeof MetalCommand;
    const { args, flags } = await this.parse({ flags: ctor.flags, baseFlags: ctor.baseFlags, args: ctor.args, strict: ctor.strict });
    this.flags = flags as MetalFlags<T>;
    this.args = args as MetalArgs<T>;
  }

  protected get env() {
    return io().env;
  }

  protected get global(): { "api-url"?: string; token?: string; context?: string; output?: string; "no-headers": boolean; debug: boolean } {
    return this.flags as never;
  }

  protected get configFile(): string {
    return configPath(this.env);
  }

  protected readConfig(): ConfigFile {
    return readConfig(this.configFile);
  }

  protected writeConfig(config: ConfigFile): void {
    writeConfig(this.configFile, config);
  }

  /** The context in use: --context, else the file's current one. */
  protected currentContext(config = this.readConfig()): { name: string | undefined; ctx: Context } {
    const name = this.global.context ?? config.current;
    if (this.global.context && !config.contexts[this.global.context]) {
      throw new UsageError(`context "${this.global.context}" not found in ${this.configFile}`);
    }
    return { name, ctx: (name && config.contexts[name]) || {} };
  }

  /** Flags win over the environment, the environment over the config file; a lab's admin token is the last resort. */
  target(): Target {
    if (this.resolved) return this.resolved;
    const { name, ctx } = this.currentContext();
    const env = this.env;
    // Where the URL came from goes into the message when it is not one.
    const [given, source] =
      this.global["api-url"] !== undefined
        ? [this.global["api-url"], "--api-url"]
        : env.METALCTL_API_URL
          ? [env.METALCTL_API_URL, "METALCTL_API_URL"]
          : ctx.url !== undefined
            ? [ctx.url, `the url of context "${name}" in ${this.configFile}`]
            : [DEFAULT_API_URL, "the default URL"];
    const url = apiUrl(given, source);
    let token = this.global.token ?? env.METALCTL_API_TOKEN ?? ctx.token;
    if (token === undefined && url === DEFAULT_API_URL) {
      // `npm start` writes its admin token here; with no context at all, metalctl works against it out of the box.
      try {
        token = readFileSync(join(env.METAL_DATA_DIR ?? ".metal", "admin-token"), "utf8").trim() || undefined;
      } catch {
        /* no local control plane: requests go without a token */
      }
    }
    const project = env.METALCTL_PROJECT ?? ctx.project;
    this.resolved = { url, token, project, context: name };
    return this.resolved;
  }

  /** --project if given, else the context's; undefined when neither is set. */
  project(flag?: string): string | undefined {
    return flag ?? this.target().project;
  }

  requireProject(flag?: string): string {
    const p = this.project(flag);
    if (!p) throw new UsageError("--project is required (or set a project in the context: metalctl context add NAME --project ID)");
    return p;
  }

  client<S extends DescService>(service: S): Client<S> {
    if (!this.transport) {
      const { url, token } = this.target();
      // Binary on the wire: a 1,000-machine list decodes several times faster than JSON; --debug still shows JSON.
      // Reads that meet a restarting server are tried again briefly; writes never are (one that timed out may have happened).
      const interceptors = [retryReads(), ...(this.global.debug ? [debugInterceptor] : [])];
      this.transport = createTransport({ baseUrl: url, protocol: "connect", binary: true, token, interceptors });
    }
    return createClient(service, this.transport);
  }

  protected out(text: string): void {
    io().stdout(text);
  }

  protected err(text: string): void {
    io().stderr(text);
  }

  protected format(fallback: OutputFormat): OutputFormat {
    return (this.global.output as OutputFormat | undefined) ?? fallback;
  }

  /** A list: a table (sorted by --sort-by when the command has it) or all items as one JSON/YAML array. */
  protected printList<D extends DescMessage, R = MessageShape<D>>(
    schema: D,
    items: MessageShape<D>[],
    columns: readonly Column<R>[],
    opts: { sortBy?: string[]; rows?: (items: MessageShape<D>[]) => R[] } = {},
  ): void {
    const format = this.format("table");
    if (format === "json" || format === "yaml") {
      this.out(
        renderData(
          items.map((i) => toJson(schema, i)),
          format,
        ),
      );
      return;
    }
    const rows = opts.rows ? opts.rows(items) : (items as unknown as R[]);
    this.out(renderTable(sortRows(rows, columns, opts.sortBy ?? []), columns, { wide: format === "wide", headers: !this.global["no-headers"] }));
  }

  /** One entity: YAML by default (what `apply -f` and `edit` read back), a one-row table on request. */
  protected printOne<D extends DescMessage>(schema: D, item: MessageShape<D>, columns?: readonly Column<MessageShape<D>>[], fallback: OutputFormat = columns ? "table" : "yaml"): void {
    const format = this.format(fallback);
    if ((format === "table" || format === "wide") && columns) {
      this.out(renderTable([item], columns, { wide: format === "wide", headers: !this.global["no-headers"] }));
      return;
    }
    this.out(renderData(toJson(schema, item), format === "json" ? "json" : "yaml"));
  }

  /** Plain data (not a proto message): key/value lines for tables, as-is for JSON/YAML. */
  protected printData(data: unknown, human: () => string): void {
    const format = this.format("table");
    if (format === "json" || format === "yaml") this.out(renderData(data, format));
    else this.out(human());
  }

  /** The optimistic-locking version of an entity (metal and masterdata both keep it in meta.version). */
  versionOf(_schema: DescMessage, msg: unknown): bigint {
    return (msg as { meta?: { version?: bigint } }).meta?.version ?? 0n;
  }

  override async catch(err: Error): Promise<never> {
    if (err instanceof Exit) throw err;
    const { line, code } = describeError(err, { url: this.resolved?.url });
    this.err(`${line}\n`);
    throw new Exit(code);
  }
}

const debugInterceptor: Interceptor = (next) => async (req) => {
  const body = req.stream ? "(stream)" : JSON.stringify(toJson(req.method.input, req.message as never));
  io().stderr(`> POST ${req.url}\n> ${body}\n`);
  const started = performance.now();
  try {
    const res = await next(req);
    io().stderr(`< ok in ${(performance.now() - started).toFixed(0)} ms\n`);
    return res;
  } catch (err) {
    io().stderr(`< ${(err as Error).message} in ${(performance.now() - started).toFixed(0)} ms\n`);
    throw err;
  }
};

/** Every page of a paged List, following next_page_token. */
export async function allPages<T>(fetch: (paging: { limit: number; pageToken: string }) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const out: T[] = [];
  let pageToken = "";
  for (;;) {
    const { items, next } = await fetch({ limit: 1000, pageToken });
    out.push(...items);
    if (!next) return out;
    pageToken = next;
  }
}

/** "machine:list" under topic aliases and verb aliases: machines list, ms ls, ... */
export function aliasesOf(id: string, topicAliases: string[], verbAliases: string[] = []): string[] {
  const parts = id.split(":");
  const topics = [parts[0]!, ...topicAliases];
  const rest = parts.slice(1);
  const verbs = rest.length > 0 ? [rest[rest.length - 1]!, ...verbAliases] : [""];
  const out: string[] = [];
  for (const t of topics)
    for (const v of verbs) {
      const a = rest.length > 0 ? [t, ...rest.slice(0, -1), v].join(":") : t;
      if (a !== id) out.push(a);
    }
  return out;
}

/** Reads "@file" arguments as file contents, like the original's --sshpublickey @~/.ssh/id.pub. */
export function atFile(value: string): string {
  if (!value.startsWith("@")) return value;
  const p = value.slice(1).replace(/^~(?=\/)/, io().env.HOME ?? "~");
  return readText(p).trim();
}
