import pino, { type Logger } from "pino";

export type { Logger };

/** JSON logs; human-readable only when a person watches a terminal. Secrets are never logged. */
export function createLogger(level: string, opts: { pretty?: boolean } = {}): Logger {
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  return pino({
    level,
    redact: { paths: ["authorization", "*.authorization", "secret", "*.secret", "token", "*.token"], censor: "[redacted]" },
    ...(pretty ? { transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } } } : {}),
  });
}
