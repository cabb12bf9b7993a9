/** One JSON line per message on stderr, as the daemons log. */
export const jsonLog = (msg: string, fields?: Record<string, unknown>): void => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), msg, ...fields })}\n`);
};
