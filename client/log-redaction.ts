/**
 * What may reach a log line. Applied by the logger to every object it is
 * given, so no call site has to remember it:
 *
 * - Errors are rebuilt from an allow-list of fields (type, message, SQLSTATE
 *   and the names of the constraint/table/column involved, stack frames,
 *   cause). Query parameters (`params`, `parameters`), PostgreSQL's `detail`
 *   (a unique violation echoes the key values), `where`, `hint`, `internalQuery`
 *   and any other field a driver adds never get through. drizzle puts the
 *   parameters into its message ("Failed query: ...\nparams: ..."): that line is
 *   cut, and values PostgreSQL quotes in its own messages (`invalid input
 *   syntax for type inet: "..."`) are replaced unless they name the constraint,
 *   table, column or schema of the error.
 * - Fields whose names say they hold a secret (passwords, tokens, SSH keys,
 *   user data, ...) are replaced at any depth.
 * - URLs lose their query string (it may carry a token).
 */

export const REDACTED = "[redacted]";

/** Normalised (lower case, no `_`/`-`) names that are secrets wherever they appear. */
const SECRET_NAMES = new Set([
  "authorization",
  "proxyauthorization",
  "cookie",
  "setcookie",
  "sshkeys",
  "sshpublickeys",
  "publickeys",
  "userdata",
  "privatekey",
  "privatejwk",
  "credentials",
  "jwt",
  "params",
  "parameters",
]);
/** Name endings that mark a secret: `consolePassword`, `bmc_password`, `adminToken`, `clientSecret`, `apiKey`. */
const SECRET_SUFFIXES = ["password", "passwd", "secret", "token", "apikey", "privatekey"];

export function isSecretKey(key: string): boolean {
  const k = key.toLowerCase().replace(/[-_]/g, "");
  if (SECRET_NAMES.has(k)) return true;
  return SECRET_SUFFIXES.some((s) => k.endsWith(s));
}

/** Fields of a database error that name things, never carry row data. */
const DB_NAME_FIELDS = ["constraint", "table", "column", "schema", "dataType"] as const;
const MAX_DEPTH = 8;
const MAX_CAUSES = 5;

/** An error as it may be logged. */
export interface SafeError {
  type: string;
  message: string;
  code?: string | number;
  constraint?: string;
  table?: string;
  column?: string;
  schema?: string;
  dataType?: string;
  routine?: string;
  severity?: string;
  /** The SQL text of a failed drizzle query: placeholders only, never the values. */
  query?: string;
  stack?: string;
  cause?: SafeError | string;
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/**
 * The message without what can echo data (see the module comment). Double
 * quotes are where PostgreSQL and JSON.parse put the offending input; single
 * quotes only count in database errors (in JavaScript's own messages they
 * surround property names, which are code, not data).
 */
function safeMessage(message: string, names: Set<string>, database: boolean): string {
  // drizzle: "Failed query: <sql>\nparams: <values>" -> keep the SQL line only.
  let m = message.replace(/\r?\nparams:[\s\S]*$/, "");
  // Quoted values inside the message; identifiers of this very error stay readable.
  m = m.replace(/"((?:[^"\\]|\\.)*)"/g, (whole, inner: string) => (names.has(inner) ? whole : `"${REDACTED}"`));
  if (database) m = m.replace(/'((?:[^'\\]|\\.)*)'/g, (whole, inner: string) => (names.has(inner) ? whole : `'${REDACTED}'`));
  return m;
}

/** A PostgreSQL error (pg or PGlite): a SQLSTATE code and a severity. */
const isDatabaseError = (e: Record<string, unknown>) => typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === "string";

/** Stack frames only: the first lines repeat the message, which is sanitised separately. */
function framesOf(stack: unknown): string | undefined {
  if (typeof stack !== "string") return undefined;
  const frames = stack.split("\n").filter((l) => /^\s+at /.test(l));
  return frames.length > 0 ? frames.join("\n") : undefined;
}

function isDrizzleQueryError(e: Record<string, unknown>): boolean {
  return typeof e.query === "string" && "params" in e && typeof e.message === "string" && e.message.startsWith("Failed query:");
}

/** An error reduced to what may be logged. */
export function safeError(err: unknown, depth = 0): SafeError | string {
  if (!(err instanceof Error) && (typeof err !== "object" || err === null)) return typeof err === "string" ? safeMessage(err, new Set(), false) : String(err);
  const e = err as unknown as Record<string, unknown>;
  const names = new Set<string>();
  for (const f of DB_NAME_FIELDS) {
    const v = str(e[f]);
    if (v) names.add(v);
  }
  const type = str((e.constructor as { name?: unknown } | undefined)?.name) ?? str(e.name) ?? "Error";
  const out: SafeError = { type, message: safeMessage(str(e.message) ?? "", names, isDatabaseError(e)) };
  if (typeof e.code === "string" || typeof e.code === "number") out.code = e.code;
  for (const f of DB_NAME_FIELDS) {
    const v = str(e[f]);
    if (v) out[f] = v;
  }
  for (const f of ["routine", "severity"] as const) {
    const v = str(e[f]);
    if (v) out[f] = v;
  }
  if (isDrizzleQueryError(e)) {
    out.message = "Failed query";
    out.query = e.query as string;
  }
  const frames = framesOf(e.stack);
  if (frames) out.stack = frames;
  if (e.cause !== undefined && depth < MAX_CAUSES) out.cause = safeError(e.cause, depth + 1);
  return out;
}

/** A URL without its query string and fragment. */
export function withoutQuery(url: string): string {
  const i = url.search(/[?#]/);
  return i < 0 ? url : `${url.slice(0, i)}?${REDACTED}`;
}

const ERROR_KEYS = new Set(["err", "error", "cause"]);

const isUrlKey = (k: string) => /(^|[a-z_])(url|uri|path|href)$/i.test(k);

function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null || typeof (v as { $typeName?: unknown }).$typeName === "string";
}

/**
 * A copy of `value` that may be logged: errors made safe, secret fields
 * replaced, URLs cut before their query. Plain objects, arrays and protobuf
 * messages are walked; other objects (dates, buffers) pass as they are.
 */
export function redactForLog(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (value instanceof Error) return safeError(value);
  if (typeof value !== "object" || value === null) return value;
  if (depth >= MAX_DEPTH) return "[too deep]";
  if (seen.has(value)) return "[circular]";
  if (Array.isArray(value)) {
    seen.add(value);
    return value.map((v) => redactForLog(v, depth + 1, seen));
  }
  if (!isPlain(value)) return value;
  seen.add(value);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (isSecretKey(k)) out[k] = v === undefined || v === null || v === "" ? v : REDACTED;
    // Error-like objects that are not Errors (some drivers and wrappers throw those) get the same allow-list.
    else if (ERROR_KEYS.has(k) && typeof v === "object" && v !== null && !Array.isArray(v)) out[k] = safeError(v);
    else if (typeof v === "string" && isUrlKey(k)) out[k] = withoutQuery(v);
    else out[k] = redactForLog(v, depth + 1, seen);
  }
  return out;
}
