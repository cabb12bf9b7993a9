import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { parseBootParams } from "../../edge/hammer/boot-params.js";
import { startPixie } from "../../edge/pixie/pixie.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let token: string;
const machineId = randomUUID();
const MAC = "0c:c4:7a:de:ad:01";
const MAC2 = "0c:c4:7a:de:ad:02";
const CORES = ["127.0.0.1:7001", "127.0.0.1:7002"];
const closers: (() => Promise<void>)[] = [];

function pixie(opts: { partition?: string; token?: string; baseUrl?: string } = {}) {
  const t = opts.token ?? token;
  const transport = createTransport({ baseUrl: opts.baseUrl ?? server.url, token: t });
  return startPixie({ transport, partition: opts.partition ?? "px" }).then((p) => (closers.push(p.close), p.url));
}

/** What the machine `id` with these NICs (cabled to pxleaf01 and pxleaf02) registers. */
function registration(id: string, macs: string[]) {
  return {
    partition: "px",
    machineId: id,
    hardware: {
      memory: 16n * 2n ** 30n,
      cpus: [{ model: "Xeon", cores: 4, threads: 8 }],
      disks: [{ name: "/dev/sda", size: 240_000_000_000n }],
      nics: macs.map((mac, i) => ({ name: `eth${i}`, mac, neighbors: [{ hostname: `pxleaf0${i + 1}`, port: "swp1" }] })),
    },
  };
}

async function bootAnswer(url: string): Promise<{ kernel: string; initrd: string[]; cmdline: string }> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/json");
  return (await res.json()) as { kernel: string; initrd: string[]; cmdline: string };
}

beforeAll(async () => {
  server = await startTestServer();
  const bootConfig = { kernelUrl: "http://images.example/metal-hammer/vmlinuz", imageUrl: "http://images.example/metal-hammer/initrd.img", commandLine: "console=ttyS0 ip=dhcp" };
  await server.client(AdminPartitions, server.adminToken).create({ id: "px", bootConfig });
  await server.client(AdminPartitions, server.adminToken).create({ id: "pnoboot" });
  await server.client(AdminPartitions, server.adminToken).create({ id: "pnocore", bootConfig });
  token = (await server.client(AdminTokens, server.adminToken).create({ subject: "px-agents", roles: { infraPartition: "px" } })).secret;
  // Two leaves whose metal-cores serve machines (nothing needs to listen there: pixie only hands the addresses out).
  for (const [i, id] of ["pxleaf01", "pxleaf02"].entries()) {
    await server.client(SwitchService, token).register({ partition: "px", id, rack: "rx", nics: [{ name: "swp1" }], machineEndpoint: CORES[i]! });
  }
  // A machine the control plane knows: registered with the infra token, as a hammer of an older version did.
  await server.grpcClient(BootService, token).register(registration(machineId, [MAC, MAC2]));
});

afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
});

describe("pixie (pixiecore API mode)", () => {
  it("answers a registered machine's MAC with the partition's boot config plus its own credential and its leaves' metal-cores, and records PXE Booting", async () => {
    const url = await pixie();
    const answer = await bootAnswer(`${url}/v1/boot/${MAC}`);
    expect(answer.kernel).toBe("http://images.example/metal-hammer/vmlinuz");
    expect(answer.initrd).toEqual(["http://images.example/metal-hammer/initrd.img"]);
    expect(answer.cmdline.startsWith("console=ttyS0 ip=dhcp ")).toBe(true);
    const params = parseBootParams(answer.cmdline);
    expect(params.machineId).toBe(machineId);
    expect(params.partition).toBe("px");
    expect(params.cores).toEqual(CORES);
    expect(params.credential).not.toBe("");
    expect(params.credentialExpiresAt.getTime()).toBeGreaterThan(Date.now());
    // The partition's infra token stays with pixie.
    expect(JSON.stringify(answer)).not.toContain(token);

    const m = (await server.client(AdminMachineService, server.adminToken).get({ id: machineId })).machine!;
    expect(m.events?.log.map((e) => e.type)).toEqual([T.PXE_BOOTING]);

    // The credential acts for its machine on the hammer's methods, and for nothing else.
    const asMachine = server.grpcClient(BootService, params.credential);
    await asMachine.register(registration(machineId, [MAC, MAC2]));
    const other = await asMachine.register(registration(randomUUID(), [MAC, MAC2])).catch((err: unknown) => ConnectError.from(err));
    expect(other).toBeInstanceOf(ConnectError);
    expect([Code.PermissionDenied, Code.Unauthenticated]).toContain((other as ConnectError).code);
    const dhcp = await asMachine.dhcp({ partition: "px", machineId }).catch((err: unknown) => ConnectError.from(err));
    expect(dhcp).toBeInstanceOf(ConnectError);

    // MACs as pixiecore or a human may spell them, and the second NIC: the same machine.
    const again = await bootAnswer(`${url}/v1/boot/${MAC2.toUpperCase().replaceAll(":", "-")}`);
    expect(parseBootParams(again.cmdline).machineId).toBe(machineId);
  });

  it("answers an unknown MAC that brings its UUID with a first-boot credential for that UUID, which registers the machine", async () => {
    const url = await pixie();
    const uuid = randomUUID();
    const mac = "0c:c4:7a:de:ad:11";
    // iPXE prints ${uuid} in lower case, other firmware may not.
    const answer = await bootAnswer(`${url}/v1/boot/${mac}?uuid=${uuid.toUpperCase()}`);
    const params = parseBootParams(answer.cmdline);
    expect(params.machineId).toBe(uuid);
    // Not cabled yet: every metal-core of the partition that serves machines.
    expect(params.cores).toEqual(CORES);
    expect(answer.cmdline).not.toContain(token);
    expect((await server.client(AdminMachineService, server.adminToken).get({ id: uuid })).machine?.events?.log.map((e) => e.type)).toEqual([T.PXE_BOOTING]);
    await server.grpcClient(BootService, params.credential).register(registration(uuid, [mac, "0c:c4:7a:de:ad:12"]));
    // Registered now: the next boot finds it by its MAC, with or without a UUID.
    expect(parseBootParams((await bootAnswer(`${url}/v1/boot/${mac}`)).cmdline).machineId).toBe(uuid);
  });

  it("gives the right status to what it cannot answer", async () => {
    const url = await pixie();
    const unknown = await fetch(`${url}/v1/boot/0c:c4:7a:00:00:99`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/must boot with its UUID/);
    // A UUID that is a registered machine without this MAC: a MAC cannot claim another machine.
    expect((await fetch(`${url}/v1/boot/0c:c4:7a:00:00:98?uuid=${machineId}`)).status).toBe(404);
    const badUuid = await fetch(`${url}/v1/boot/0c:c4:7a:00:00:99?uuid=not-a-uuid`);
    expect(badUuid.status).toBe(400);
    expect(((await badUuid.json()) as { error: string }).error).toMatch(/not an SMBIOS UUID/);
    const bad = await fetch(`${url}/v1/boot/not-a-mac`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/not a MAC address/);
    expect((await fetch(`${url}/v1/boot/${MAC}`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${url}/v2/whatever`)).status).toBe(404);
  });

  it("upstream trouble: nothing to boot 404, no metal-core yet 503, a refused token 502, an unreachable control plane 503", async () => {
    const pnoboot = (await server.client(AdminTokens, server.adminToken).create({ subject: "pnoboot", roles: { infraPartition: "pnoboot" } })).secret;
    expect((await fetch(`${await pixie({ partition: "pnoboot", token: pnoboot })}/v1/boot/${MAC}?uuid=${randomUUID()}`)).status).toBe(404);
    // No switch of the partition serves machines yet: the hammer could reach nothing, so the firmware is told to try again.
    const pnocore = (await server.client(AdminTokens, server.adminToken).create({ subject: "pnocore", roles: { infraPartition: "pnocore" } })).secret;
    const noCore = await fetch(`${await pixie({ partition: "pnocore", token: pnocore })}/v1/boot/${MAC}?uuid=${randomUUID()}`);
    expect(noCore.status).toBe(503);
    expect(((await noCore.json()) as { error: string }).error).toMatch(/no metal-core/);
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
