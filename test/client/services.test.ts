import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMetalClient, METAL_SERVICES, type MetalClient } from "../../client/index.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const PROTO = fileURLToPath(new URL("../../proto/", import.meta.url));

/** Services only replicas or load balancers speak: not in the client package (client/services.ts). */
const NOT_FOR_CLIENTS = new Set(["metal.internal.v1", "grpc.health.v1"]);

/** Each group of METAL_SERVICES and the proto package its services come from. */
const GROUP_PACKAGES: Record<string, string> = { api: "metal.api.v1", admin: "metal.admin.v1", infra: "metal.infra.v1", masterdata: "masterdata.v1" };

async function protoFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => (e.isDirectory() ? protoFiles(join(dir, e.name)) : Promise.resolve(e.name.endsWith(".proto") ? [join(dir, e.name)] : []))));
  return nested.flat();
}

/** Every service declared in proto/, by full name. */
async function declaredServices(): Promise<string[]> {
  const names: string[] = [];
  for (const file of await protoFiles(PROTO)) {
    const text = await readFile(file, "utf8");
    const pkg = /^package\s+([\w.]+)\s*;/m.exec(text)?.[1];
    if (!pkg) throw new Error(`${file} declares no package`);
    for (const m of text.matchAll(/^service\s+(\w+)\s*\{/gm)) names.push(`${pkg}.${m[1]}`);
  }
  return names.sort();
}

describe("the client package's services", () => {
  it("has a typed client for every public service in proto/, each in the group of its package", async () => {
    const declared = (await declaredServices()).filter((name) => !NOT_FOR_CLIENTS.has(name.slice(0, name.lastIndexOf("."))));
    const inClient = Object.entries(METAL_SERVICES).flatMap(([group, services]) =>
      Object.values(services).map((service) => {
        expect(service.typeName.startsWith(`${GROUP_PACKAGES[group]}.`), `${service.typeName} in group ${group}`).toBe(true);
        return service.typeName;
      }),
    );
    expect(declared.length).toBeGreaterThan(30);
    expect(inClient.sort()).toEqual(declared);
  });

  describe("against the control plane", () => {
    let server: TestServer;
    let metal: MetalClient & { close(): void };
    beforeAll(async () => {
      server = await startTestServer();
      metal = createMetalClient({ baseUrl: server.url, token: server.adminToken });
    });
    afterAll(() => metal?.close());

    it("reaches the sign-in, audit and masterdata services added with tenancy", async () => {
      expect((await metal.api.signIn.config({})).enabled).toBe(false);
      await metal.admin.partition.create({ id: "client-services", name: "through the client" });
      const { entries } = await metal.admin.audit.list({});
      expect(entries.some((e) => e.method.endsWith("PartitionService/Create"))).toBe(true);
      const { tenants } = await metal.masterdata.tenant.find({});
      expect(Array.isArray(tenants)).toBe(true);
    });
  });
});
