import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { invalidArgument } from "../errors.js";

/**
 * Refuses every request that carries a NUL character (U+0000) or another
 * control character (C0 and DEL; tab, line feed and carriage return are
 * text) in any string, anywhere in the message: PostgreSQL cannot store a NUL
 * in text or jsonb, so without this each handler would have to remember every
 * field, and those that forgot answered Internal; the other control
 * characters have no place in ids, names or data a terminal later shows. Walked by the message's descriptor: plain,
 * optional, repeated and oneof fields, map keys and values, nested messages
 * to any depth. Streams are checked message by message as the handler reads
 * them. Runs after authentication (an unauthenticated caller makes us do no
 * work) and before any handler.
 */
export function createStringsInterceptor(): Interceptor {
  return (next) => async (req) => {
    const input = req.method.input;
    if (!req.stream) {
      refuseControlCharacters(input, req.message);
      return next(req);
    }
    return next({ ...req, message: checkedStream(input, req.message) });
  };
}

/** The stream as the handler would read it, each message checked before it is handed on. Module level: no closure per call. */
async function* checkedStream<T>(desc: DescMessage, stream: AsyncIterable<T>): AsyncGenerator<T> {
  for await (const message of stream) {
    refuseControlCharacters(desc, message);
    yield message;
  }
}

/** Throws InvalidArgument naming the first field path that holds a NUL or another control character. */
export function refuseControlCharacters(desc: DescMessage, message: unknown): void {
  const path = firstPath(desc, message as Record<string, unknown>, "", isControl);
  if (path === undefined) return;
  // The failure path only: a second walk tells a NUL (the common attack) from other control characters.
  const what = firstPath(desc, message as Record<string, unknown>, "", isNul) === path ? "NUL characters" : "control characters";
  throw invalidArgument(`invalid request: ${path}: must not contain ${what}`);
}

/** C0 controls and DEL, except tab, line feed and carriage return. */
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** Per message type, the fields under which a string can occur; most messages of a Wait or a heartbeat have few. */
const stringFields = new WeakMap<DescMessage, readonly DescField[]>();

function fieldsOf(desc: DescMessage, visiting = new Set<DescMessage>()): readonly DescField[] {
  const known = stringFields.get(desc);
  if (known) return known;
  // A recursive type is assumed to hold strings everywhere: right, only not as short as it could be.
  if (visiting.has(desc)) return desc.fields;
  visiting.add(desc);
  const fields = desc.fields.filter((f) => holdsStrings(f, visiting));
  visiting.delete(desc);
  stringFields.set(desc, fields);
  return fields;
}

function holdsStrings(f: DescField, visiting: Set<DescMessage>): boolean {
  switch (f.fieldKind) {
    case "scalar":
      return f.scalar === ScalarType.STRING;
    case "enum":
      return false;
    case "message":
      return fieldsOf(f.message, visiting).length > 0;
    case "list":
      if (f.listKind === "scalar") return f.scalar === ScalarType.STRING;
      return f.listKind === "message" && fieldsOf(f.message, visiting).length > 0;
    case "map":
      if (f.mapKey === ScalarType.STRING) return true;
      if (f.mapKind === "scalar") return f.scalar === ScalarType.STRING;
      return f.mapKind === "message" && fieldsOf(f.message, visiting).length > 0;
  }
}

type Bad = (v: unknown) => boolean;
const isControl: Bad = (v) => typeof v === "string" && CONTROL.test(v);
const isNul: Bad = (v) => typeof v === "string" && v.includes("\u0000");

function firstPath(desc: DescMessage, message: Record<string, unknown> | undefined, prefix: string, hasNul: Bad): string | undefined {
  if (!message) return undefined;
  for (const f of fieldsOf(desc)) {
    let value: unknown;
    if (f.oneof) {
      const chosen = message[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (chosen?.case !== f.localName) continue;
      value = chosen.value;
    } else {
      value = message[f.localName];
    }
    if (value === undefined || value === null) continue;
    const path = prefix === "" ? f.name : `${prefix}.${f.name}`;
    switch (f.fieldKind) {
      case "scalar":
        if (hasNul(value)) return path;
        break;
      case "message": {
        const found = inMessageValue(f.message, value, path, hasNul);
        if (found) return found;
        break;
      }
      case "list": {
        const items = value as readonly unknown[];
        for (let i = 0; i < items.length; i++) {
          const item = items[i];
          const found = f.listKind === "message" ? inMessageValue(f.message, item, `${path}[${i}]`, hasNul) : hasNul(item) ? `${path}[${i}]` : undefined;
          if (found) return found;
        }
        break;
      }
      case "map":
        for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
          if (hasNul(key)) return `${path} key "${printable(key)}"`;
          const at = `${path}["${printable(key)}"]`;
          const found = f.mapKind === "message" ? inMessageValue(f.message, item, at, hasNul) : hasNul(item) ? at : undefined;
          if (found) return found;
        }
        break;
    }
  }
  return undefined;
}

/**
 * A message-typed value as protobuf-es holds it: a message, or, for the
 * well-known wrapper and JSON types, the plain value it stands for.
 */
function inMessageValue(desc: DescMessage, value: unknown, path: string, hasNul: Bad): string | undefined {
  if (typeof value === "string") return hasNul(value) ? path : undefined;
  if (typeof value !== "object" || value === null) return undefined;
  if ("$typeName" in value) return firstPath(desc, value as Record<string, unknown>, path, hasNul);
  return inJson(value, path, hasNul);
}

function inJson(value: unknown, path: string, hasNul: Bad): string | undefined {
  if (typeof value === "string") return hasNul(value) ? path : undefined;
  if (typeof value !== "object" || value === null) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = inJson(value[i], `${path}[${i}]`, hasNul);
      if (found) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    if (hasNul(key)) return `${path} key "${printable(key)}"`;
    const found = inJson(item, `${path}.${key}`, hasNul);
    if (found) return found;
  }
  return undefined;
}

/** A map key quoted back in a message: short, and without control characters. */
function printable(key: string): string {
  const shown = key.replace(/[\u0000-\u001f\u007f]/g, "?");
  return shown.length > 64 ? `${shown.slice(0, 64)}…` : shown;
}
