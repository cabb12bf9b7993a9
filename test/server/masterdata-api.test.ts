import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { TenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { AdminRole } from "../../gen/metal/api/v1/common_pb.js";
import { createMachineCredentials } from "../../server/auth/machine-credential.js";
import { createReplicaCredentials } from "../../server/auth/replica-credential.js";
import { createKeyRing } from "../../server/auth/signing-keys.js";
import { createTokenAuthority, type TokenAuthority } from "../../server/auth/token-authority.js";
import { loadConfig } from "../../server/config.js";
import type { Database } from "../../server/db/database.js";
import { type MetalSchema, openMetalDatabase } from "../../server/db/metal-database.js";
import { listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { createPublicKeyRing } from "../../server/masterdata/auth/public-keys.js";
import { createServiceCredentialSigner, SERVICE_AUDIENCE, SERVICE_ISSUER, SERVICE_TYP } from "../../server/masterdata/auth/service-credential.js";
import { createTokenVerifier, isMetalApi } from "../../server/masterdata/auth/token-verifier.js";
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
      const issue = async (subject: string, adminRole: AdminRole, infraPartition: string) =>
        (
          await authority.issue(metal.db, {
            subject,
            description: "",
            roles: { adminRole, projectRoles: {}, tenantRoles: {}, infraPartition },
            createdBy: "test",
            expiresAt: new Date(Date.now() + 3600_000),
          })
        ).secret;
      const admin = await issue("op", AdminRole.ADMIN, "");
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
      // A partition daemon's infra token is a metal token too, but no operator's: masterdata is not its business.
      const infra = await issue("metal-core p1", AdminRole.UNSPECIFIED, "p1");
      await run(async (url) => {
        await expectCode(tenants(url).find({}), Code.Unauthenticated);
        await expectCode(tenants(url, infra).find({}), Code.PermissionDenied);
        await tenants(url, admin).create({ tenant: { meta: { id: "kept" }, name: "kept across restarts" } });
      });
      await run(async (url) => {
        expect((await tenants(url, admin).get({ id: "kept" })).tenant?.name).toBe("kept across restarts");
      });
    },
    scaled(60_000),
  );
});

describe("masterdata-api's credentials", () => {
  const roles = { adminRole: AdminRole.ADMIN, projectRoles: {}, tenantRoles: {}, infraPartition: "" };

  it("takes metal-api's service credential only here and only within its minute; no other credential of the control plane passes as one", async () => {
    const keys = createPublicKeyRing(metal.db);
    await keys.load();
    const verifier = createTokenVerifier(metal.db, keys);
    const service = await createServiceCredentialSigner(metal.db, "api-1").current();
    const principal = await verifier.verify(service);
    expect(isMetalApi(principal)).toBe(true);
    expect(principal.roles.adminRole).toBe(AdminRole.ADMIN);
    // metal-api's own token authority refuses it: it is no metal token.
    await expectCode(authority.verify(service), Code.Unauthenticated, "not valid");

    // Signed with the control plane's real key, but replayed past its minute, or for another audience.
    const { kid, privateKey } = await createKeyRing(metal.db).signer(metal.db);
    const now = Math.floor(Date.now() / 1000);
    const sign = (iat: number, exp: number, audience = SERVICE_AUDIENCE, typ = SERVICE_TYP) =>
      new SignJWT({}).setProtectedHeader({ alg: "EdDSA", kid, typ }).setIssuer(SERVICE_ISSUER).setAudience(audience).setSubject("api-1").setIssuedAt(iat).setExpirationTime(exp).sign(privateKey);
    await expectCode(verifier.verify(await sign(now - 61, now + 3600)), Code.Unauthenticated);
    await expectCode(verifier.verify(await sign(now - 120, now - 60)), Code.Unauthenticated);
    await expectCode(verifier.verify(await sign(now, now + 60, "metal.internal.v1.ReplicaService")), Code.Unauthenticated);
    // The service issuer without the service type goes the metal-token way, which wants issuer "metal".
    await expectCode(verifier.verify(await sign(now, now + 60, SERVICE_AUDIENCE, "JWT")), Code.Unauthenticated);

    // A replica's credential and a machine's, both signed with the same key, are refused here.
    const replica = await (await createReplicaCredentials(metal.db, "api-1")).current();
    await expectCode(verifier.verify(replica), Code.Unauthenticated);
    const machine = await (await createMachineCredentials(metal.db)).issue({ machineId: "m1", partition: "p1", generation: 0, mac: "" });
    await expectCode(verifier.verify(machine.secret), Code.Unauthenticated);

    // Metal tokens as metal-api decides them: a revoked or expired one is refused, whatever its signature.
    const live = await authority.issue(metal.db, { subject: "op", description: "", roles, createdBy: "test", expiresAt: new Date(Date.now() + 3600_000) });
    expect(isMetalApi(await verifier.verify(live.secret))).toBe(false);
    const revoked = await authority.issue(metal.db, { subject: "op", description: "", roles, createdBy: "test", expiresAt: new Date(Date.now() + 3600_000) });
    await authority.revoke(metal.db, revoked.row.id);
    await expectCode(verifier.verify(revoked.secret), Code.Unauthenticated, "revoked");
    // Expired: its JWT expiry has passed (the row's expiry is the same instant).
    const expired = await authority.issue(metal.db, { subject: "op", description: "", roles, createdBy: "test", expiresAt: new Date(Date.now() - 1000) });
    await expectCode(verifier.verify(expired.secret), Code.Unauthenticated, "expired");
  });
});
