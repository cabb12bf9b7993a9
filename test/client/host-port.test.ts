import { describe, expect, it } from "vitest";
import { formatHostPort, HostPortError, parseHostPort } from "../../client/host-port.js";

describe("host:port", () => {
  it.each([
    ["127.0.0.1:8080", { host: "127.0.0.1", port: 8080 }],
    ["api.example:443", { host: "api.example", port: 443 }],
    ["[::1]:8080", { host: "::1", port: 8080 }],
    ["[fe80::1%eth0]:22", { host: "fe80::1%eth0", port: 22 }],
    [":8080", { host: "", port: 8080 }],
    ["127.0.0.1:0", { host: "127.0.0.1", port: 0 }],
  ])("parses %s", (text, want) => {
    expect(parseHostPort(text)).toEqual(want);
    expect(formatHostPort(parseHostPort(text))).toBe(text);
  });

  it("falls back to a default port for a bare host, a bracketed or an unbracketed IPv6 address", () => {
    expect(parseHostPort("bmc-1", { defaultPort: 623 })).toEqual({ host: "bmc-1", port: 623 });
    expect(parseHostPort("[2001:db8::5]", { defaultPort: 623 })).toEqual({ host: "2001:db8::5", port: 623 });
    expect(parseHostPort("2001:db8::5", { defaultPort: 5222 })).toEqual({ host: "2001:db8::5", port: 5222 });
    expect(parseHostPort("10.0.0.1:6230", { defaultPort: 623 })).toEqual({ host: "10.0.0.1", port: 6230 });
  });

  it.each([
    ["localhost", "is not host:port (e.g."],
    ["h:99999", "the port must be a number from 0 to 65535"],
    ["h:80x", "the port must be a number"],
    ["h:", "the port must be a number"],
    ["::1:8080", "an IPv6 address needs brackets"],
    ["[::1]8080", "brackets hold an IPv6 address"],
    ["[host]:80", "brackets hold an IPv6 address"],
    ["", "it is empty"],
  ])("refuses %j, saying why", (text, why) => {
    expect(() => parseHostPort(text)).toThrow(HostPortError);
    expect(() => parseHostPort(text)).toThrow(why);
    expect(() => parseHostPort(text)).toThrow(`"${text}" is not host:port`);
  });

  it("brackets IPv6 hosts when formatting", () => {
    expect(formatHostPort({ host: "2001:db8::1", port: 443 })).toBe("[2001:db8::1]:443");
    expect(formatHostPort({ host: "10.0.0.1", port: 623 })).toBe("10.0.0.1:623");
  });
});
