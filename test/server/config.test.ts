import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../server/config.js";

describe("configuration", () => {
  it("has the documented defaults", () => {
    const c = loadConfig({}, []);
    expect(c).toMatchObject({ listen: "127.0.0.1:8080", consoleListen: "127.0.0.1:5222", dataDir: resolve("./.metal"), logLevel: "info", databasePoolSize: 20 });
    expect(c.databaseUrl).toBeUndefined();
    expect(c.masterdataDatabaseUrl).toBeUndefined();
    expect(c.corsOrigins).toEqual([]);
  });

  it("reads environment variables, and flags win over them", () => {
    const env = { METAL_LISTEN: "0.0.0.0:9000", DATABASE_URL: "postgres://a/b", METAL_CORS_ORIGINS: "http://a, http://b" };
    expect(loadConfig(env, [])).toMatchObject({ listen: "0.0.0.0:9000", databaseUrl: "postgres://a/b", corsOrigins: ["http://a", "http://b"] });
    expect(loadConfig(env, ["--listen", "127.0.0.1:1"]).listen).toBe("127.0.0.1:1");
    expect(loadConfig(env, ["--database-url=postgres://c/d"]).databaseUrl).toBe("postgres://c/d");
    expect(loadConfig({ METAL_DB_POOL_SIZE: "64" }, []).databasePoolSize).toBe(64);
    expect(loadConfig({}, ["--masterdata-db-pool-size", "4"]).masterdataDatabasePoolSize).toBe(4);
    expect(() => loadConfig({ MASTERDATA_DB_POOL_SIZE: "0" }, [])).toThrow(/masterdata-db-pool-size.*not a number of connections/);
    expect(loadConfig({}, []).consoleIdleTimeoutMs).toBe(30 * 60_000);
    expect(loadConfig({ METAL_CONSOLE_IDLE_TIMEOUT: "90s" }, []).consoleIdleTimeoutMs).toBe(90_000);
    expect(loadConfig({}, ["--console-idle-timeout", "0"]).consoleIdleTimeoutMs).toBe(0);
    expect(loadConfig({ METAL_LISTEN: "[::]:8080" }, []).listen).toBe("[::]:8080");
    expect(loadConfig({ METAL_WAIT_STREAM_LIMITS: "2/3/4" }, []).streamLimits.wait).toEqual({ perConnection: 2, perPrincipal: 3, total: 4 });
  });

  it.each([
    [["--nope", "x"], 'unknown flag "--nope"'],
    [["--listen"], 'flag "--listen" needs a value'],
    [["stray"], 'unexpected argument "stray"'],
    [["--listen", "localhost"], "is not host:port"],
    [["--listen", "h:99999"], "is not host:port"],
    [["--tls-cert", "c.pem"], "must be set together"],
    [["--db-pool-size", "0"], "is not a number of connections"],
    [["--console-idle-timeout", "soon"], "METAL_CONSOLE_IDLE_TIMEOUT"],
    [["--db-pool-size", "many"], "is not a number of connections"],
    [["--listen", "::1:8080"], '--listen ($METAL_LISTEN): "::1:8080" is not host:port: an IPv6 address needs brackets'],
    [["--wait-stream-limits", "1/0/5"], '--wait-stream-limits ($METAL_WAIT_STREAM_LIMITS): "1/0/5" is not per-connection/per-principal/total'],
  ])("refuses %j", (argv, message) => {
    expect(() => loadConfig({}, argv)).toThrow(ConfigError);
    expect(() => loadConfig({}, argv)).toThrow(message);
  });
});
