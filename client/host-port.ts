/**
 * host:port as operators type it: "127.0.0.1:8080", "api.example:443",
 * "[::1]:8080", ":8080" (every interface, for a listen address). An IPv6
 * address needs brackets when a port follows, since its colons would
 * otherwise swallow the port.
 */
export interface HostPort {
  /** Without brackets; "" for every interface. */
  readonly host: string;
  readonly port: number;
}

export class HostPortError extends Error {}

export interface HostPortOptions {
  /** Used when the text names no port (a bare host, "[v6]", or an unbracketed IPv6 address); without it a port is required. */
  readonly defaultPort?: number;
}

const PORT = /^\d{1,5}$/;

function port(text: string, digits: string): number {
  const n = Number(digits);
  if (!PORT.test(digits) || n > 65535) throw new HostPortError(`"${text}" is not host:port: the port must be a number from 0 to 65535`);
  return n;
}

function noPort(text: string, host: string, opts: HostPortOptions): HostPort {
  if (opts.defaultPort === undefined) throw new HostPortError(`"${text}" is not host:port (e.g. 127.0.0.1:8080 or [::1]:8080)`);
  return { host, port: opts.defaultPort };
}

/** Parses host:port; throws HostPortError with a message that quotes the text. */
export function parseHostPort(text: string, opts: HostPortOptions = {}): HostPort {
  const value = text.trim();
  if (value.startsWith("[")) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(value);
    if (!m || !m[1]!.includes(":")) throw new HostPortError(`"${text}" is not host:port: brackets hold an IPv6 address, e.g. [::1]:8080`);
    return m[2] === undefined ? noPort(text, m[1]!, opts) : { host: m[1]!, port: port(text, m[2]) };
  }
  const first = value.indexOf(":");
  if (first === -1) {
    if (value === "") throw new HostPortError(`"${text}" is not host:port: it is empty`);
    return noPort(text, value, opts);
  }
  if (first !== value.lastIndexOf(":")) {
    // Several colons and no brackets: an IPv6 address alone.
    if (opts.defaultPort === undefined) throw new HostPortError(`"${text}" is not host:port: an IPv6 address needs brackets, e.g. [::1]:8080`);
    return { host: value, port: opts.defaultPort };
  }
  return { host: value.slice(0, first), port: port(text, value.slice(first + 1)) };
}

/** The text form, bracketing IPv6 hosts: formatHostPort({ host: "::1", port: 80 }) is "[::1]:80". */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
