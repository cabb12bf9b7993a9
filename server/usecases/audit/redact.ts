import { isSecretKey, REDACTED } from "../../../client/log-redaction.js";

/** A request above this (as JSON, after redaction) is recorded as its size only: the trail must stay cheap to write. */
export const MAX_RECORDED_REQUEST_BYTES = 16 * 1024;
const MAX_DEPTH = 8;

/**
 * The request as the audit trail keeps it: every field whose name says it
 * holds a secret (the log redaction's rule: passwords, console passwords,
 * tokens and secrets, SSH keys, user data, private keys) and every
 * credentials object (BMC credentials) is replaced by "[redacted]", at any
 * depth, so the entry shows that it was set but never what it was.
 */
export function redactRequest(json: unknown): Record<string, unknown> {
  const redacted = redact(json, 0);
  const object = redacted !== null && typeof redacted === "object" && !Array.isArray(redacted) ? (redacted as Record<string, unknown>) : { value: redacted };
  const size = Buffer.byteLength(JSON.stringify(object));
  return size > MAX_RECORDED_REQUEST_BYTES ? { truncated: true, bytes: size } : object;
}

/** NUL and lone surrogates: PostgreSQL's jsonb and text refuse them, and a refused call may well carry them. */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** A string as the trail can store it: what PostgreSQL refuses becomes U+FFFD. */
export function storable(s: string): string {
  return s.replace(UNSTORABLE, "\uFFFD");
}

function isSecret(key: string): boolean {
  return isSecretKey(key) || key.toLowerCase().endsWith("credentials");
}

function redact(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) return REDACTED;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (typeof value === "string") return storable(value);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[storable(k)] = isSecret(k) && v !== "" && v !== null ? REDACTED : redact(v, depth + 1);
  return out;
}
