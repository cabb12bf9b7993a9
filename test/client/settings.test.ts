import { describe, expect, it } from "vitest";
import { describeSettings, parseDuration, readSettings, SettingsError } from "../../client/settings.js";

const settings = {
  url: { env: "X_URL", flag: "url", fallback: "http://127.0.0.1:8080" },
  token: { env: "X_TOKEN", flag: "token" },
  mqtt: { env: "X_MQTT", flag: "mqtt", optional: true },
  listen: { env: "X_LISTEN", flag: "listen", fallback: "127.0.0.1:8080" },
  timeout: { env: "X_TIMEOUT", flag: "timeout", fallback: "30s" },
  interval: { env: "X_INTERVAL", flag: "interval", fallback: "60" },
  vlan: { env: "X_VLAN", flag: "vlan", fallback: "4000" },
  debug: { env: "X_DEBUG", flag: "debug", fallback: "false" },
  names: { env: "X_NAMES", flag: "names", fallback: "" },
} as const;

const read = (env: NodeJS.ProcessEnv, argv: string[] = []) => readSettings(settings, env, argv);

describe("settings", () => {
  it("takes a flag over the environment over the fallback; an empty variable is unset", () => {
    expect(read({}).get("url")).toBe("http://127.0.0.1:8080");
    expect(read({ X_URL: "http://a:1" }).get("url")).toBe("http://a:1");
    expect(read({ X_URL: "http://a:1" }, ["--url", "http://b:2"]).get("url")).toBe("http://b:2");
    expect(read({ X_URL: "http://a:1" }, ["--url=http://c:3"]).get("url")).toBe("http://c:3");
    expect(read({ X_URL: "" }).get("url")).toBe("http://127.0.0.1:8080");
    expect(read({}).optional("mqtt")).toBeUndefined();
  });

  it("reads typed values", () => {
    const r = read({ X_TIMEOUT: "2m", X_VLAN: "12", X_DEBUG: "yes", X_NAMES: " a, ,b " }, ["--interval", "0.25", "--listen", "[::1]:9"]);
    expect(r.duration("timeout")).toBe(120_000);
    expect(r.seconds("interval")).toBe(250);
    expect(r.int("vlan", 1, 4094)).toBe(12);
    expect(r.bool("debug")).toBe(true);
    expect(r.list("names")).toEqual(["a", "b"]);
    expect(r.hostPort("listen")).toBe("[::1]:9");
    expect(r.url("url", ["http:", "https:"])).toBe("http://127.0.0.1:8080");
    expect(r.parse("vlan", (t) => Number(t) * 2)).toBe(24);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("0")).toBe(0);
    expect(parseDuration("5")).toBeUndefined();
  });

  it.each([
    [{}, [], (r: ReturnType<typeof read>) => r.get("token"), "--token ($X_TOKEN) is required"],
    [{}, ["--token", ""], (r: ReturnType<typeof read>) => r.get("token"), "--token ($X_TOKEN) is required"],
    [{ X_TIMEOUT: "soon" }, [], (r: ReturnType<typeof read>) => r.duration("timeout"), '--timeout ($X_TIMEOUT): "soon" is not a duration'],
    [{ X_TIMEOUT: "0" }, [], (r: ReturnType<typeof read>) => r.duration("timeout"), "--timeout ($X_TIMEOUT): must be longer than 0"],
    [{}, ["--interval", "-1"], (r: ReturnType<typeof read>) => r.seconds("interval"), '--interval ($X_INTERVAL): must be a positive number of seconds, not "-1"'],
    [{}, ["--vlan", "5000"], (r: ReturnType<typeof read>) => r.int("vlan", 1, 4094), '--vlan ($X_VLAN): must be a number from 1 to 4094, not "5000"'],
    [{ X_DEBUG: "maybe" }, [], (r: ReturnType<typeof read>) => r.bool("debug"), '--debug ($X_DEBUG): "maybe" is neither true nor false'],
    [{ X_LISTEN: "localhost" }, [], (r: ReturnType<typeof read>) => r.hostPort("listen"), '--listen ($X_LISTEN): "localhost" is not host:port'],
    [{ X_URL: "ftp://x" }, [], (r: ReturnType<typeof read>) => r.url("url", ["http:", "https:"]), '--url ($X_URL): "ftp://x" must start with http:// or https://'],
    [{ X_URL: "nope" }, [], (r: ReturnType<typeof read>) => r.url("url"), '--url ($X_URL): "nope" is not a URL'],
  ])("names the setting in its error (%j %j)", (env, argv, use, message) => {
    const r = read(env, argv);
    expect(() => use(r)).toThrow(SettingsError);
    expect(() => use(r)).toThrow(message);
  });

  it.each([
    [["--nope", "x"], 'unknown flag "--nope"'],
    [["--url"], 'flag "--url" needs a value'],
    [["stray"], 'unexpected argument "stray"'],
  ])("refuses the command line %j", (argv, message) => {
    expect(() => read({}, argv)).toThrow(SettingsError);
    expect(() => read({}, argv)).toThrow(message);
  });

  it("describes every setting for --help", () => {
    const help = describeSettings(settings, ["X_LISTEN"]);
    expect(help).toMatch(/--token +\$X_TOKEN \(required\)/);
    expect(help).toMatch(/--mqtt +\$X_MQTT\n/);
    expect(help).toMatch(/--listen +\$X_LISTEN\n/);
    expect(help).toMatch(/--names +\$X_NAMES \(default none\)/);
    expect(help).toMatch(/--url +\$X_URL \(default http:\/\/127\.0\.0\.1:8080\)/);
  });
});
