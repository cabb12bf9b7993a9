import { Code, ConnectError } from "@connectrpc/connect";
import { UsageError } from "./output.js";

/** Exit codes by class, so that scripts can tell "not there" from "not allowed" without parsing text. */
export const ExitCode = {
  generic: 1,
  usage: 2,
  notFound: 3,
  permission: 4,
  conflict: 5,
  exhausted: 6,
  unavailable: 7,
} as const;

/** Thrown to end a run with an exit code after the message was printed. */
export class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

const codeWords = (c: Code) => Code[c]!.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();

/** "class: message", unless the server's message already starts with its class (it often does). */
function classed(words: string, msg: string): string {
  return msg.toLowerCase().startsWith(`${words}:`) ? msg : `${words}: ${msg}`;
}

/** Errors of the socket, not of the server: nothing reached a control plane. */
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "EPIPE", "ECONNABORTED"]);

/** A line for a request that never got an HTTP answer, or undefined when the error came from a server. */
function transportProblem(err: ConnectError, url: string | undefined): string | undefined {
  const cause = err.cause as { code?: unknown } | undefined;
  const sys = typeof cause?.code === "string" ? cause.code : undefined;
  if (!sys) return undefined;
  const at = url ? ` at ${url}` : "";
  if (UNREACHABLE.has(sys)) return `unavailable: cannot reach the control plane${at}: ${err.rawMessage}`;
  // llhttp's parse errors: something answered, but not in HTTP (an SSH port, a database, ...).
  if (sys.startsWith("HPE_")) return `unavailable: the server${at} does not speak HTTP; is this the API address? (metal-api listens on 127.0.0.1:8080 unless METAL_LISTEN says otherwise)`;
  if (sys === "EPROTO" || sys.startsWith("ERR_SSL") || sys.startsWith("ERR_TLS")) return `unavailable: no TLS connection${at}; does it speak https? (${err.rawMessage.split("\n")[0]})`;
  return undefined;
}

/** One human line and the exit code for anything a command can throw; `url` is where requests went, for the line. */
export function describeError(err: unknown, where: { url?: string } = {}): { line: string; code: number } {
  if (err instanceof UsageError) return { line: err.message, code: ExitCode.usage };
  if (err instanceof ConnectError) {
    const transport = transportProblem(err, where.url);
    if (transport) return { line: transport, code: ExitCode.unavailable };
    const msg = err.rawMessage;
    const line = classed(codeWords(err.code), msg);
    switch (err.code) {
      case Code.NotFound:
        // "machine "x" not found" says its class itself.
        return { line: msg, code: ExitCode.notFound };
      case Code.InvalidArgument:
        return { line, code: ExitCode.usage };
      case Code.PermissionDenied:
      case Code.Unauthenticated:
        return { line, code: ExitCode.permission };
      case Code.AlreadyExists:
      case Code.FailedPrecondition:
      case Code.Aborted:
        return { line, code: ExitCode.conflict };
      case Code.ResourceExhausted:
        return { line, code: ExitCode.exhausted };
      case Code.Unavailable:
        return { line, code: ExitCode.unavailable };
      default:
        return { line, code: ExitCode.generic };
    }
  }
  const oclif = (err as { oclif?: { exit?: number } }).oclif;
  const message = err instanceof Error ? err.message : String(err);
  // oclif's own parse errors (unknown flag, missing argument, bad option) carry exit 2.
  if (oclif?.exit !== undefined) return { line: message, code: oclif.exit === 1 ? ExitCode.generic : oclif.exit };
  const cause = (err as { cause?: { code?: string } }).cause;
  if (cause?.code && UNREACHABLE.has(cause.code)) return { line: `unavailable: ${message}`, code: ExitCode.unavailable };
  return { line: message, code: ExitCode.generic };
}
