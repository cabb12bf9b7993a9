import pino, { type DestinationStream, type Logger } from "pino";
import { redactForLog, type SafeError, safeError } from "../client/log-redaction.js";

export type { Logger };

export interface LoggerOptions {
  /** Human-readable output (default: when stdout is a TTY). */
  pretty?: boolean;
  /** Where lines go instead of stdout (tests read the log back from here). */
  destination?: DestinationStream;
}

/**
 * Every object handed to a log call, before pino sees it: errors reduced to
 * safe fields, secret fields replaced, URLs without their query (see
 * log-redaction.ts). A hook, so that no call site can forget it; it runs only
 * for lines whose level is enabled.
 */
function redactArgs(this: Logger, args: Parameters<pino.LogFn>, method: pino.LogFn): void {
  const [first, ...rest] = args as unknown[];
  const call = (a: unknown[]) => (method as (...x: unknown[]) => void).apply(this, a);
  if (first instanceof Error) {
    const err = safeError(first) as SafeError;
    // pino would take the raw message as the line's message: give it the safe one.
    call(rest.length > 0 ? [{ err }, ...rest] : [{ err }, err.message]);
    return;
  }
  if (typeof first === "object" && first !== null) {
    call([redactForLog(first), ...rest]);
    return;
  }
  call(args);
}

/** JSON logs; human-readable only when a person watches a terminal. Secrets are never logged. */
export function createLogger(level: string, opts: LoggerOptions = {}): Logger {
  const pretty = opts.destination === undefined && (opts.pretty ?? process.stdout.isTTY === true);
  const options: pino.LoggerOptions = {
    level,
    hooks: { logMethod: redactArgs },
    // Child bindings do not pass the hook: their errors are made safe here.
    serializers: { err: (v: unknown) => (v instanceof Error ? safeError(v) : v) },
    ...(pretty ? { transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } } } : {}),
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
