import { readFileSync } from "node:fs";
import { type DescEnum, type DescField, type DescMessage, type JsonObject, ScalarType } from "@bufbuild/protobuf";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from "yaml";
import { io } from "./io.js";
import { UsageError } from "./output.js";

/**
 * Reading `-f` files: YAML or JSON, any number of documents, each checked
 * against the entity's message before anything is sent. A misspelled field
 * would otherwise be dropped in silence and the object created without it, so
 * every unknown field, and every value of the wrong type, is refused with its
 * file, document and line.
 */

/** Where each document came from ("f.yaml, document 2, line 4"), for errors found later (conversion, the server). */
const origins = new WeakMap<JsonObject, string>();

export const originOf = (doc: JsonObject): string | undefined => origins.get(doc);

const READ_ERRORS: Record<string, string> = {
  ENOENT: "no such file",
  EISDIR: "it is a directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
};

/** A file's text; a file that cannot be read is a usage error saying why (exit code 2), not a raw ENOENT. */
export function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    throw new UsageError(`cannot read ${file}: ${READ_ERRORS[code] ?? (err as Error).message}`);
  }
}

/** The documents of a YAML/JSON file ("-" is stdin); a document holding a list counts as its items. */
export async function readDocuments(file: string, schema?: DescMessage): Promise<JsonObject[]> {
  const text = file === "-" ? await io().stdin() : readText(file);
  const name = file === "-" ? "stdin" : file;
  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lines });
  if (!Array.isArray(parsed)) return noDocuments(name);
  const many = parsed.length > 1;
  const docs: JsonObject[] = [];
  parsed.forEach((d, i) => {
    const docName = many ? `${name}, document ${i + 1}` : name;
    if (d.errors.length > 0) throw new UsageError(`${docName}: ${d.errors[0]!.message}`);
    const node = d.contents as Node | null;
    if (node === null || (isScalar(node) && node.value === null)) return;
    const items: { node: Node; where: string }[] = isSeq(node) ? node.items.map((n, k) => ({ node: n as Node, where: `${docName}, item ${k + 1}` })) : [{ node, where: docName }];
    for (const item of items) {
      const at = (n: Node | null | undefined) => `${item.where}, line ${n?.range ? lines.linePos(n.range[0]).line : "?"}`;
      if (!isMap(item.node)) throw new UsageError(`${at(item.node)}: a document must be a mapping of fields (key: value)`);
      if (schema) checkMessage(item.node, schema, "", at);
      const value = item.node.toJSON() as JsonObject;
      origins.set(value, at(item.node));
      docs.push(value);
    }
  });
  if (docs.length === 0) return noDocuments(name);
  return docs;
}

function noDocuments(name: string): never {
  throw new UsageError(`${name}: no documents`);
}

type At = (n: Node | null | undefined) => string;

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);

function checkMessage(node: Node, desc: DescMessage, path: string, at: At): void {
  if (!isMap(node)) throw new UsageError(`${at(node)}: ${path || "the document"}: expected a mapping of fields`);
  for (const pair of node.items) {
    const keyNode = pair.key as Node | null;
    const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
    if (key === undefined) throw new UsageError(`${at(keyNode)}: ${path || "the document"}: a field name must be a plain word`);
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    if (!field) throw new UsageError(`${at(keyNode)}: unknown field "${join(path, key)}"${suggest(key, desc)}`);
    checkField(pair.value as Node | null, field, join(path, field.jsonName), at, keyNode);
  }
}

/** " (did you mean "name"?)" for a near miss, else the fields there are. */
function suggest(key: string, desc: DescMessage): string {
  const names = desc.fields.map((f) => f.jsonName);
  const near = names.filter((n) => distance(n.toLowerCase(), key.toLowerCase()) <= Math.max(1, Math.floor(n.length / 4)));
  if (near.length > 0) return ` (did you mean "${near[0]}"?)`;
  return `; the fields of ${desc.name} are ${names.join(", ")}`;
}

/** Edits (insert, delete, replace, swap two neighbours) between two words: "nmae" is one from "name". */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  return d[a.length]![b.length]!;
}

const isNull = (n: Node | null) => n === null || (isScalar(n) && n.value === null);

function checkField(value: Node | null, field: DescField, path: string, at: At, keyNode: Node | null): void {
  // `key:` with nothing, or null: the field's default, as in proto JSON.
  if (isNull(value)) return;
  const where = at(value ?? keyNode);
  switch (field.fieldKind) {
    case "scalar":
      return checkScalar(value!, field.scalar, path, at);
    case "enum":
      return checkEnum(value!, field.enum, path, at);
    case "message":
      return checkNested(value!, field.message, path, at);
    case "list": {
      if (!isSeq(value)) throw new UsageError(`${where}: ${path}: expected a list, got ${kindOf(value!)}`);
      value.items.forEach((item, i) => {
        const p = `${path}[${i}]`;
        const n = item as Node;
        if (field.listKind === "scalar") checkScalar(n, field.scalar, p, at);
        else if (field.listKind === "enum") checkEnum(n, field.enum, p, at);
        else checkNested(n, field.message, p, at);
      });
      return;
    }
    case "map": {
      if (!isMap(value)) throw new UsageError(`${where}: ${path}: expected a mapping, got ${kindOf(value!)}`);
      for (const pair of value.items) {
        const k = pair.key as Node;
        const p = `${path}.${isScalar(k) ? String(k.value) : "?"}`;
        const v = pair.value as Node | null;
        if (isNull(v)) continue;
        if (field.mapKind === "scalar") checkScalar(v!, field.scalar, p, at);
        else if (field.mapKind === "enum") checkEnum(v!, field.enum, p, at);
        else checkNested(v!, field.message, p, at);
      }
      return;
    }
  }
}

/** Well-known types (Timestamp, Duration, Struct, ...) have JSON forms of their own; the conversion checks those. */
function checkNested(node: Node, desc: DescMessage, path: string, at: At): void {
  if (desc.typeName.startsWith("google.protobuf.")) return;
  if (!isMap(node)) throw new UsageError(`${at(node)}: ${path}: expected a mapping of fields, got ${kindOf(node)}`);
  checkMessage(node, desc, path, at);
}

function kindOf(node: Node): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === "string") return `the text "${v}"`;
    if (typeof v === "boolean") return `the boolean ${v}`;
    if (typeof v === "number" || typeof v === "bigint") return `the number ${v}`;
  }
  return "something else";
}

const INTEGER = /^-?\d+$/;

function checkScalar(node: Node, type: ScalarType, path: string, at: At): void {
  const fail = (want: string) => {
    throw new UsageError(`${at(node)}: ${path}: expected ${want}, got ${kindOf(node)}`);
  };
  if (!isScalar(node)) return fail(scalarName(type));
  const v = node.value;
  switch (type) {
    case ScalarType.STRING:
      if (typeof v !== "string") fail(`text (put it in quotes: "${String(v)}")`);
      return;
    case ScalarType.BYTES:
      if (typeof v !== "string") fail("base64 text");
      return;
    case ScalarType.BOOL:
      if (typeof v !== "boolean") fail("true or false");
      return;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      if (typeof v !== "number" && !(typeof v === "string" && (v === "NaN" || v === "Infinity" || v === "-Infinity" || !Number.isNaN(Number(v))))) fail("a number");
      return;
    default: {
      // Integers; 64-bit ones are strings in proto JSON, and either form is accepted.
      const ok = (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint" || (typeof v === "string" && INTEGER.test(v));
      if (!ok) fail("a whole number");
      const unsigned = [ScalarType.UINT32, ScalarType.UINT64, ScalarType.FIXED32, ScalarType.FIXED64].includes(type);
      if (unsigned && String(v).startsWith("-")) fail("a whole number of at least 0");
    }
  }
}

const scalarName = (type: ScalarType) => (type === ScalarType.STRING ? "text" : type === ScalarType.BOOL ? "true or false" : "a number");

function checkEnum(node: Node, desc: DescEnum, path: string, at: At): void {
  const names = desc.values.filter((v) => v.number !== 0).map((v) => v.name);
  const v = isScalar(node) ? node.value : undefined;
  if (typeof v === "string" && desc.values.some((x) => x.name === v)) return;
  if (typeof v === "number" && desc.values.some((x) => x.number === v)) return;
  throw new UsageError(`${at(node)}: ${path}: expected one of ${names.join(", ")}, got ${kindOf(node)}`);
}
