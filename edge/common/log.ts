import { redactForLog } from "../../client/log-redaction.js";

/**
 * One JSON line per message on stderr, as the daemons log. The fields pass
 * the control plane's redaction rules (client/log-redaction.ts) first:
 * secret-named fields replaced, errors reduced to safe fields, URLs without
 * their query, whatever the call site hands in.
 */
function writeLine(line: Record<string, unknown>, fields: Record<string, unknown> | undefined): void {
  const safe = fields === undefined ? {} : (redactForLog(fields) as Record<string, unknown>);
  process.stderr.write(`${JSON.stringify({ ...line, ...safe })}\n`);
}

export const jsonLog = (msg: string, fields?: Record<string, unknown>): void => writeLine({ time: new Date().toISOString(), msg }, fields);

/** The same with a level (metal-core's log takes one). */
export const leveledJsonLog = (level: string, msg: string, fields?: Record<string, unknown>): void => writeLine({ time: new Date().toISOString(), level, msg }, fields);
