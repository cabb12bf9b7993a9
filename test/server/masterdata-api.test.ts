import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { TenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { AdminRole } from "../../gen/metal/api/v1/common_pb.js";
import { createTokenAuthority, type TokenAuthority } from "../../server/auth/token-authority.js";
import { loadConfig } from "../../server/config.js";
import type { Database } from "../../server/db/database.js";
import { type MetalSchema, openMetalDatabase } from "../../server/db/metal-database.js";
import { listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { loadMasterdataConfig } from "../../server/masterdata/config.js";
import { createMasterdataServer } from "../../server/masterdata/server.js";
import { expectCode } from "../helpers/expect.js";
import { createScratchDatabase, type ScratchDatabase } from "../helpers/postgres.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * masterdata-api's settings, and the server in-process on its embedded
 * database (no MASTERDATA_DATABASE_URL): its own data directory, kept across a
 * restart. The processes on PostgreSQL are test/e2e/masterdata-api.test.ts.
 */
let metalDb: ScratchDatabase;
let metal: Database<MetalSchema>;
let authority: TokenAuthority;
let dir: string;

beforeAll(async () => {
  metalDb = await createScratchDatabase("mdapi_unit", { from: "metal" });
  metal = await openMetalDatabase({ url: metalDb.url, dataDir: undefined, poolSize: 2 });
  // As metal-api's start: the first signing key.
  authority = await createTokenAuthority(metal.db);
  dir = await mkdtemp(join(tmpdir(), "masterdata-api-unit-"));
});

afterAll(async () => {
  await metal?.close();
  metalDb?.dropLater();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("masterdata-api settings", () => {
  it("needs the metal database, as a PostgreSQL URL; defaults to its own port and data directory", () => {
    expect(() => loadMasterdataConfig({}, [])).toThrow(/METAL_DATABASE_URL.*is required/);
    expect(() => loadMasterdataConfig({ METAL_DATABASE_URL: "mysql://x" }, [])).toThrow(/must start with postgres/);
    expect(() => loadMasterdataConfig({ METAL_DATABASE_URL: "postgres://x/y", MASTERDATA_TLS_CERT: "c" }, [])).toThrow(/set together/);
    const c = loadMasterdataConfig({ METAL_DATABASE_URL: "postgres://x/y" }, ["--data-dir", "/srv/md"]);
    expect(c).toMatchObject({ listen: "127.0.0.1:8081", dataDir: "/srv/md", databaseUrl: undefined, metalDatabasePoolSize: 4 });
  });

  it("metal-api takes MASTERDATA_URL (http or https) instead of MASTERDATA_DATABASE_URL, never both", () => {
    expect(loadConfig({ MASTERDATA_URL: "http://md:8081" }, []).masterdataUrl).toBe("http://md:8081");
    expect(loadConfig({}, []).masterdataUrl).toBeUndefined();
    expect(() => loadConfig({ MASTERDATA_URL: "ftp://md" }, [])).toThrow(/MASTERDATA_URL/);
    expect(() => loadConfig({ MASTERDATA_URL: "http://md:8081", MASTERDATA_DATABASE_URL: "postgres://x/y" }, [])).toThrow(/not both/);
  });
});

describe("masterdata-api on its embedded database", () => {
  it(
    "keeps tenants in its own data directory across a restart, and refuses calls without a token",
    async () => {
      const config = loadMasterdataConfig({ METAL_DATABASE_URL: metalDb.url, MASTERDATA_LISTEN: "127.0.0.1:0", MASTERDATA_DATA_DIR: dir, METAL_DB_POOL_SIZE: "2" }, []);
      const admin = (
        await authority.issue(metal.db, {
          subject: "op",
          description: "",
          roles: { adminRole: AdminRole.ADMIN, projectRoles: {}, tenantRoles: {}, infraPartition: "" },
          createdBy: "test",
          expiresAt: new Date(Date.now() + 3600_000),
        })
      ).secret;
      const run = async <T>(fn: (url: string) => Promise<T>): Promise<T> => {
        const server = await createMasterdataServer(config, createLogger("silent", { pretty: false }));
        const listener = await listen(server.handler, config.listen, undefined, config.connections);
        try {
          expect(server.databaseKind).toBe("pglite");
          return await fn(listener.url);
        } finally {
          server.endStreams();
          await listener.close();
          await server.close();
        }
      };
      const tenants = (url: string, token?: string) => createClient(TenantService, createTransport({ baseUrl: url, protocol: "connect", token }));
      await run(async (url) => {
        await expectCode(tenants(url).find({}), Code.Unauthenticated);
        await tenants(url, admin).create({ tenant: { meta: { id: "kept" }, name: "kept across restarts" } });
      });
      await run(async (url) => {
        expect((await tenants(url, admin).get({ id: "kept" })).tenant?.name).toBe("kept across restarts");
      });
    },
    scaled(60_000),
  );
});
