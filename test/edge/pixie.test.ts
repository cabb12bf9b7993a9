import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { startPixie } from "../../edge/pixie/pixie.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let token: string;
const machineId = randomUUID();
const MAC = "0c:c4:7a:de:ad:01";
const known = new Map([[MAC, machineId]]);
const closers: (() => Promise<void>)[] = [];

function pixie(opts: { partition?: string; token?: string; baseUrl?: string } = {}) {
  const t = opts.token ?? token;
  const transport = createTransport({ baseUrl: opts.baseUrl ?? server.url, token: t });
  return startPixie({ transport, partition: opts.partition ?? "px", machineIdOf: (mac) => known.get(mac) }).then((p) => (closers.push(p.close), p.url));
}

beforeAll(async () => {
  server = await startTestServer();
  await server.client(AdminPartitions, server.adminToken).create({
    id: "px",
    bootConfig: { kernelUrl: "http://images.example/metal-hammer/vmlinuz", imageUrl: "http://images.example/metal-hammer/initrd.img", commandLine: "console=ttyS0 ip=dhcp" },
  });
  await server.client(AdminPartitions, server.adminToken).create({ id: "pnoboot" });
  token = (await server.client(AdminTokens, server.adminToken).create({ subject: "px-agents", roles: { infraPartition: "px" } })).secret;
});

afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
});

describe("pixie (pixiecore API mode)", () => {
  it("answers GET /v1/boot/<mac> with the partition's kernel, initrd and cmdline, and records PXE Booting", async () => {
    const url = await pixie();
    const res = await fetch(`${url}/v1/boot/${MAC}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({
      kernel: "http://images.example/metal-hammer/vmlinuz",
      initrd: ["http://images.example/metal-hammer/initrd.img"],
      cmdline: "console=ttyS0 ip=dhcp",
    });
    const m = (await server.client(AdminMachineService, server.adminToken).get({ id: machineId })).machine!;
    expect(m.events?.log.map((e) => e.type)).toEqual([T.PXE_BOOTING]);
    // MACs as pixiecore or a human may spell them.
    expect((await fetch(`${url}/v1/boot/${MAC.toUpperCase().replaceAll(":", "-")}`)).status).toBe(200);
  });

  it("gives the right status to what it cannot answer", async () => {
    const url = await pixie();
    expect((await fetch(`${url}/v1/boot/0c:c4:7a:00:00:99`)).status).toBe(404);
    const bad = await fetch(`${url}/v1/boot/not-a-mac`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/not a MAC address/);
    expect((await fetch(`${url}/v1/boot/${MAC}`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${url}/v2/whatever`)).status).toBe(404);
  });

  it("upstream trouble: nothing to boot 404, a refused token 502, an unreachable control plane 503", async () => {
    const pnoboot = (await server.client(AdminTokens, server.adminToken).create({ subject: "pnoboot", roles: { infraPartition: "pnoboot" } })).secret;
    expect((await fetch(`${await pixie({ partition: "pnoboot", token: pnoboot })}/v1/boot/${MAC}`)).status).toBe(404);
    expect((await fetch(`${await pixie({ token: "garbage" })}/v1/boot/${MAC}`)).status).toBe(502);
    // A port that was free a moment ago: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const down = await fetch(`${await pixie({ baseUrl: `http://127.0.0.1:${port}` })}/v1/boot/${MAC}`);
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("5");
  });
});
