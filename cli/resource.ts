import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DescMessage, type JsonObject, type MessageShape, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Args, type Command, Flags, type Interfaces } from "@oclif/core";
import { stringify } from "yaml";
import { aliasesOf, MetalCommand } from "./base.js";
import { originOf, readDocuments } from "./documents.js";
import { type Column, UsageError } from "./output.js";

type Shape<E extends DescMessage> = MessageShape<E>;
type AnyFlags = Record<string, unknown>;
type FlagDefs = Interfaces.FlagInput;

/**
 * What the generic verbs (list, describe, create, update, apply, edit, delete)
 * need to know about one kind of entity. Documents are the entity's canonical
 * proto JSON, so `describe -o yaml` output can be edited and applied back.
 */
export interface ResourceSpec<E extends DescMessage> {
  kind: string;
  topic: string;
  topicAliases: string[];
  /** Whole alternative topic paths of a sub-topic, e.g. "size:rs". */
  topicPrefixAliases?: string[];
  schema: E;
  columns: Column<Shape<E>>[];
  /** The id a document names, or undefined when the server assigns it on create. */
  docId(doc: JsonObject): string | undefined;
  idOf(e: Shape<E>): string;
  get(cmd: MetalCommand<typeof Command>, id: string, flags: AnyFlags): Promise<Shape<E>>;
  list?(cmd: MetalCommand<typeof Command>, flags: AnyFlags): Promise<Shape<E>[]>;
  listFlags?: FlagDefs;
  create?(cmd: MetalCommand<typeof Command>, doc: JsonObject, flags: AnyFlags): Promise<Shape<E>>;
  createFlags?: FlagDefs;
  /** A document from create flags, when the command supports them. */
  createDoc?(flags: AnyFlags): JsonObject;
  /** `version` is the one to send: the document's own for update/edit, the current one for apply. */
  update?(cmd: MetalCommand<typeof Command>, doc: JsonObject, current: Shape<E>, version: string, flags: AnyFlags): Promise<Shape<E>>;
  delete?(cmd: MetalCommand<typeof Command>, id: string, flags: AnyFlags): Promise<Shape<E>>;
  /** Flags every verb of this resource accepts, e.g. --project. */
  commonFlags?: FlagDefs;
}

/**
 * Runs one document's request; a document the conversion to the request
 * refuses (a value of a form the checks let through) is a usage error naming
 * the document, not an internal error naming a request type.
 */
async function forDocument<T>(doc: JsonObject, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConnectError || err instanceof UsageError || !(err instanceof Error)) throw err;
    // @bufbuild/protobuf: "cannot decode message metal.admin.v1.XRequest from JSON: ..." / "cannot decode field metal....: ...".
    const reason = err.message.replace(/^cannot decode (message|field) [\w.]+ from JSON:\s*/, "").replace(/\b(metal|masterdata|google)\.[\w.]+\.(\w+)\b/g, "$2");
    throw new UsageError(`${originOf(doc) ?? "document"}: ${reason}`);
  }
}

const versionOfDoc = (doc: JsonObject): string | undefined => {
  const meta = doc.meta as JsonObject | undefined;
  return meta?.version === undefined ? undefined : String(meta.version);
};

const isNotFound = (err: unknown) => err instanceof ConnectError && err.code === Code.NotFound;

/** Copies the keys present in `doc` into a request, wrapping lists and maps the way Update requests want them. */
export function pickForUpdate(doc: JsonObject, plain: string[], wrapped: string[] = []): JsonObject {
  const out: JsonObject = {};
  for (const k of plain) if (doc[k] !== undefined) out[k] = doc[k]!;
  for (const k of wrapped) if (doc[k] !== undefined) out[k] = { values: doc[k]! };
  return out;
}

export function resourceCommands<E extends DescMessage>(spec: ResourceSpec<E>): Record<string, typeof Command> {
  const id = (verb: string) => `${spec.topic}:${verb}`;
  const aliases = (verb: string, verbAliases: string[] = []) => {
    const own = aliasesOf(id(verb), spec.topicAliases, verbAliases);
    // Sub-topics have aliases of their own: size rs ls, size ic list.
    const more = (spec.topicPrefixAliases ?? []).flatMap((p) => [verb, ...verbAliases].map((v) => `${p}:${v}`));
    return [...own, ...more];
  };
  const common = spec.commonFlags ?? {};
  const fileHelp = "YAML or JSON file with one or more documents (- for stdin)";
  const fileFlag = Flags.string({ char: "f", description: fileHelp });
  const requiredFile = Flags.string({ char: "f", description: fileHelp, required: true });
  const cmds: Record<string, typeof Command> = {};

  cmds[id("describe")] = class extends MetalCommand<typeof Command> {
    static override summary = `show one ${spec.kind}`;
    static override hiddenAliases = aliases("describe", ["get"]);
    static override args = { id: Args.string({ required: true, description: `id of the ${spec.kind}` }) };
    static override flags = { ...common };
    async run() {
      const flags = this.flags as AnyFlags;
      this.printOne(spec.schema, await spec.get(this, (this.args as { id: string }).id, flags), spec.columns, "yaml");
    }
  };

  if (spec.list) {
    const list = spec.list;
    cmds[id("list")] = class extends MetalCommand<typeof Command> {
      static override summary = `list ${spec.kind}s`;
      static override hiddenAliases = aliases("list", ["ls"]);
      static override flags = { ...common, ...(spec.listFlags ?? {}), "sort-by": Flags.string({ multiple: true, description: "column[:asc|:desc] to sort by" }) };
      async run() {
        const flags = this.flags as AnyFlags;
        this.printList(spec.schema, await list(this, flags), spec.columns, { sortBy: flags["sort-by"] as string[] | undefined });
      }
    };
  }

  if (spec.create) {
    const create = spec.create;
    cmds[id("create")] = class extends MetalCommand<typeof Command> {
      static override summary = `create ${spec.kind}s from flags or from a file`;
      static override hiddenAliases = aliases("create");
      static override flags = { ...common, ...(spec.createFlags ?? {}), file: fileFlag };
      async run() {
        const flags = this.flags as AnyFlags;
        let docs: JsonObject[];
        if (flags.file) docs = await readDocuments(flags.file as string, spec.schema);
        else if (spec.createDoc) docs = [spec.createDoc(flags)];
        else throw new UsageError("-f/--file is required");
        const created: Shape<E>[] = [];
        for (const doc of docs) created.push(await forDocument(doc, () => create(this, doc, flags)));
        this.printList(spec.schema, created, spec.columns);
      }
    };
  }

  if (spec.update) {
    const update = spec.update;
    const updateFromDocs = async (cmd: MetalCommand<typeof Command>, docs: JsonObject[], flags: AnyFlags, mode: "update" | "apply") => {
      const done: Shape<E>[] = [];
      for (const doc of docs) {
        const docId = spec.docId(doc);
        let current: Shape<E> | undefined;
        if (docId !== undefined) {
          try {
            current = await spec.get(cmd, docId, flags);
          } catch (err) {
            if (!(mode === "apply" && isNotFound(err))) throw err;
          }
        }
        if (!current) {
          if (mode === "update") throw new UsageError(`every document needs an id to update a ${spec.kind}`);
          if (!spec.create) throw new UsageError(`${spec.kind}s cannot be created`);
          done.push(await forDocument(doc, () => spec.create!(cmd, doc, flags)));
          continue;
        }
        // apply means "make it so": it writes over concurrent changes; update -f and edit detect them by the version read.
        const version = mode === "apply" ? String(cmd.versionOf(spec.schema, current)) : (versionOfDoc(doc) ?? String(cmd.versionOf(spec.schema, current)));
        done.push(await forDocument(doc, () => update(cmd, doc, current!, version, flags)));
      }
      return done;
    };

    cmds[id("update")] = class extends MetalCommand<typeof Command> {
      static override summary = `update ${spec.kind}s from a file (each document names its id)`;
      static override hiddenAliases = aliases("update");
      static override flags = { ...common, file: requiredFile };
      async run() {
        const flags = this.flags as AnyFlags;
        this.printList(spec.schema, await updateFromDocs(this, await readDocuments(flags.file as string, spec.schema), flags, "update"), spec.columns);
      }
    };

    cmds[id("apply")] = class extends MetalCommand<typeof Command> {
      static override summary = `create or update ${spec.kind}s from a file, by id`;
      static override hiddenAliases = aliases("apply");
      static override flags = { ...common, file: requiredFile };
      async run() {
        const flags = this.flags as AnyFlags;
        this.printList(spec.schema, await updateFromDocs(this, await readDocuments(flags.file as string, spec.schema), flags, "apply"), spec.columns);
      }
    };

    cmds[id("edit")] = class extends MetalCommand<typeof Command> {
      static override summary = `edit a ${spec.kind} in $EDITOR and update it`;
      static override hiddenAliases = aliases("edit");
      static override args = { id: Args.string({ required: true, description: `id of the ${spec.kind}` }) };
      static override flags = { ...common };
      async run() {
        const flags = this.flags as AnyFlags;
        const current = await spec.get(this, (this.args as { id: string }).id, flags);
        const before = stringify(toJson(spec.schema, current), { lineWidth: 0 });
        const dir = mkdtempSync(join(tmpdir(), "metalctl-edit-"));
        const file = join(dir, `${spec.topic}.yaml`);
        try {
          writeFileSync(file, before);
          const editor = this.env.VISUAL || this.env.EDITOR || "vi";
          // Through a shell, so that EDITOR may carry arguments ("code --wait").
          const r = spawnSync(`${editor} "${file}"`, { shell: true, stdio: "inherit", env: this.env as NodeJS.ProcessEnv });
          if (r.status !== 0) throw new UsageError(`editor "${editor}" exited with ${r.status ?? r.signal}; nothing changed`);
          const after = readFileSync(file, "utf8");
          if (after === before) {
            this.err(`${spec.kind} "${spec.idOf(current)}" unchanged\n`);
            return;
          }
          this.printList(spec.schema, await updateFromDocs(this, await readDocuments(file, spec.schema), flags, "update"), spec.columns);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    };
  }

  if (spec.delete) {
    const del = spec.delete;
    cmds[id("delete")] = class extends MetalCommand<typeof Command> {
      static override summary = `delete a ${spec.kind}`;
      static override hiddenAliases = aliases("delete", ["rm", "destroy"]);
      static override args = { id: Args.string({ required: true, description: `id of the ${spec.kind}` }) };
      static override flags = { ...common };
      async run() {
        const flags = this.flags as AnyFlags;
        this.printList(spec.schema, [await del(this, (this.args as { id: string }).id, flags)], spec.columns);
      }
    };
  }
  return cmds;
}
