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

/** One human line and the exit code for anything a command can throw. */
export function describeError(err: unknown): { line: string; code: number } {
  if (err instanceof UsageError) return { line: err.message, code: ExitCode.usage };
  if (err instanceof ConnectError) {
    const msg = err.rawMessage;
    switch (err.code) {
      case Code.NotFound:
        return { line: msg, code: ExitCode.notFound };
      case Code.InvalidArgument:
        return { line: `invalid argument: ${msg}`, code: ExitCode.usage };
      case Code.PermissionDenied:
      case Code.Unauthenticated:
        return { line: `${codeWords(err.code)}: ${msg}`, code: ExitCode.permission };
      case Code.AlreadyExists:
      case Code.FailedPrecondition:
      case Code.Aborted:
        return { line: `${codeWords(err.code)}: ${msg}`, code: ExitCode.conflict };
      case Code.ResourceExhausted:
        return { line: `resource exhausted: ${msg}`, code: ExitCode.exhausted };
      case Code.Unavailable:
        return { line: `unavailable: ${msg}`, code: ExitCode.unavailable };
      default:
        return { line: `${codeWords(err.code)}: ${msg}`, code: ExitCode.generic };
    }
  }
  const oclif = (err as { oclif?: { exit?: number } }).oclif;
  const message = err instanceof Error ? err.message : String(err);
  // oclif's own parse errors (unknown flag, missing argument, bad option) carry exit 2.
  if (oclif?.exit !== undefined) return { line: message, code: oclif.exit === 1 ? ExitCode.generic : oclif.exit };
  const cause = (err as { cause?: { code?: string } }).cause;
  if (cause?.code === "ECONNREFUSED") return { line: `unavailable: ${message}`, code: ExitCode.unavailable };
  return { line: message, code: ExitCode.generic };
}
