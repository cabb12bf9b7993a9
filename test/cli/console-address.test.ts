import { describe, expect, it } from "vitest";
import { consoleAddress } from "../../cli/commands/machine.js";

describe("metalctl's console address", () => {
  it("takes host, host:port, [v6]:port and a bare v6 address, with 5222 when no port is given", () => {
    expect(consoleAddress("console.example")).toEqual({ host: "console.example", port: 5222 });
    expect(consoleAddress("10.0.0.1:5299")).toEqual({ host: "10.0.0.1", port: 5299 });
    expect(consoleAddress("[2001:db8::1]:2222")).toEqual({ host: "2001:db8::1", port: 2222 });
    expect(consoleAddress("[2001:db8::1]")).toEqual({ host: "2001:db8::1", port: 5222 });
    expect(consoleAddress("2001:db8::1")).toEqual({ host: "2001:db8::1", port: 5222 });
  });

  it.each([
    ["h:99999", '--console-host: "h:99999" is not host:port: the port must be a number from 0 to 65535'],
    ["h:ssh", '--console-host: "h:ssh" is not host:port: the port must be a number'],
    ["h:0", '--console-host: "h:0" names no host and port to connect to'],
    [":5222", '--console-host: ":5222" names no host and port to connect to'],
  ])("refuses %j, naming the flag", (value, message) => {
    expect(() => consoleAddress(value)).toThrow(message);
  });
});
