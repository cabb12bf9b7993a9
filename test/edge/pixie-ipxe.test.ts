import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { parseBootParams } from "../../edge/hammer/boot-params.js";
import { prepareDnsmasq } from "../../edge/pixie/dnsmasq.js";
import { renderDnsmasqConfig } from "../../edge/pixie/dnsmasq-config.js";
import { bootScript, machineScript, refusalScript } from "../../edge/pixie/ipxe.js";
import { loadPixieConfig } from "../../edge/pixie/main.js";
import { startPixie } from "../../edge/pixie/pixie.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const KERNEL = "http://images.example/metal-hammer/vmlinuz";
const INITRD = "http://images.example/metal-hammer/initrd.img";

describe("iPXE scripts", () => {
  it("boot.ipxe chains to the machine's own script by iPXE's MAC and UUID, and asks again when that fails", () => {
    const s = bootScript("http://10.0.0.1:8081/");
    expect(s.startsWith("#!ipxe\n")).toBe(true);
    expect(s).toContain(`chain --autofree http://10.0.0.1:8081/ipxe/\${netX/mac}?uuid=\${uuid} || goto failed`);
    expect(s).toMatch(/:failed\n[^\n]*\nsleep \d+\ngoto retry\n/);
    expect(() => bootScript("ftp://10.0.0.1/")).toThrow(/http, https or tftp/);
  });

  it("a machine's script loads the kernel with its command line and the initrds by name, then boots", () => {
    const s = machineScript({ kernel: KERNEL, initrd: [INITRD, "http://images.example/extra.img"], cmdline: "console=ttyS0 metal.machine=x" });
    expect(s.split("\n")).toEqual([
      "#!ipxe",
      `kernel --name kernel ${KERNEL} initrd=initrd0 initrd=initrd1 console=ttyS0 metal.machine=x`,
      `initrd --name initrd0 ${INITRD}`,
      "initrd --name initrd1 http://images.example/extra.img",
      "boot kernel",
      "",
    ]);
  });

  it("refuses what iPXE would not pass on unchanged", () => {
    expect(() => machineScript({ kernel: KERNEL, initrd: [], cmdline: `a=\${b}` })).toThrow(/would expand/);
    expect(() => machineScript({ kernel: KERNEL, initrd: [], cmdline: "a || b" })).toThrow(/operators/);
    expect(() => machineScript({ kernel: KERNEL, initrd: [], cmdline: "a\nb" })).toThrow(/control characters/);
    expect(() => machineScript({ kernel: "file:///vmlinuz", initrd: [], cmdline: "" })).toThrow(/http, https or tftp/);
    expect(() => machineScript({ kernel: KERNEL, initrd: ["not a url"], cmdline: "" })).toThrow(/initrd URL 1/);
  });

  it("a refusal is shown on the console without anything iPXE would expand, waits by its kind and fails the chain", () => {
    const s = refusalScript({ status: 404, error: `no machine known with MAC 0c:c4:7a:00:00:99: boot with \${uuid} && more\nline` });
    const lines = s.split("\n");
    expect(lines[0]).toBe("#!ipxe");
    expect(lines[1]).toMatch(/^echo pixie: no machine known with MAC 0c:c4:7a:00:00:99/);
    expect(lines[1]).not.toContain("$");
    expect(lines[1]).not.toContain("&&");
    expect(s).toContain("sleep 60\nexit 1\n");
    expect(refusalScript({ status: 503, error: "later" })).toContain("sleep 5\n");
  });
});

describe("dnsmasq config", () => {
  const input = { iface: "br0", network: "10.0.0.0", tftpRoot: "/srv/pixie/tftp", bootScriptUrl: "http://10.0.0.1:8081/ipxe/boot.ipxe", stateDir: "/srv/pixie" };

  it("proxy DHCP and TFTP only: iPXE over TFTP for PXE firmware by architecture, boot.ipxe over HTTP for iPXE", () => {
    const lines = renderDnsmasqConfig(input).split("\n");
    for (const l of [
      "port=0",
      "interface=br0",
      "bind-interfaces",
      "dhcp-range=10.0.0.0,proxy",
      "enable-tftp",
      "tftp-root=/srv/pixie/tftp",
      "dhcp-userclass=set:ipxe,iPXE",
      "dhcp-match=set:ipxe,175",
      'pxe-service=tag:!ipxe,x86PC,"metal: iPXE",undionly.kpxe',
      'pxe-service=tag:!ipxe,BC_EFI,"metal: iPXE (UEFI)",ipxe.efi',
      'pxe-service=tag:!ipxe,X86-64_EFI,"metal: iPXE (UEFI)",ipxe.efi',
      'pxe-service=tag:ipxe,x86PC,"metal: boot script",http://10.0.0.1:8081/ipxe/boot.ipxe',
      "dhcp-boot=tag:ipxe,http://10.0.0.1:8081/ipxe/boot.ipxe",
    ])
      expect(lines).toContain(l);
    // Never a DHCP range that hands out addresses: the partition's DHCP server does that.
    expect(lines.filter((l) => l.startsWith("dhcp-range="))).toEqual(["dhcp-range=10.0.0.0,proxy"]);
  });

  it("refuses values that would break the config", () => {
    expect(() => renderDnsmasqConfig({ ...input, network: "10.0.0.0/24" })).toThrow(/IPv4 address/);
    expect(() => renderDnsmasqConfig({ ...input, iface: "br0\ndhcp-range=10.0.0.10,10.0.0.20" })).toThrow(/interface name/);
    expect(() => renderDnsmasqConfig({ ...input, bootScriptUrl: "https://10.0.0.1/ipxe/boot.ipxe" })).toThrow(/must be http/);
    expect(() => renderDnsmasqConfig({ ...input, tftpRoot: "/srv/a,b" })).toThrow(/cannot go into/);
  });

  it("prepares the TFTP root from the iPXE dir, readable by dnsmasq's unprivileged user, and names a missing build", () => {
    const dir = mkdtempSync(join(tmpdir(), "pixie-prep-"));
    try {
      const ipxe = join(dir, "ipxe");
      const state = join(dir, "state");
      const opts = { iface: "br0", network: "10.0.0.0", bootScriptUrl: "http://10.0.0.1:8081/ipxe/boot.ipxe", ipxeDir: ipxe, stateDir: state };
      expect(() => prepareDnsmasq(opts)).toThrow(/undionly\.kpxe is missing/);
      rmSync(state, { recursive: true, force: true });
      mkdirSync(ipxe);
      writeFileSync(join(ipxe, "undionly.kpxe"), "bios");
      writeFileSync(join(ipxe, "ipxe.efi"), "efi");
      const conf = prepareDnsmasq(opts);
      expect(readFileSync(conf, "utf8")).toContain(`tftp-root=${join(state, "tftp")}`);
      expect(readFileSync(join(state, "tftp", "undionly.kpxe"), "utf8")).toBe("bios");
      expect(statSync(join(state, "tftp", "ipxe.efi")).mode & 0o777).toBe(0o644);
      expect(statSync(join(state, "tftp")).mode & 0o777).toBe(0o755);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("pixie's settings", () => {
  const env = { METAL_PIXIE_TOKEN: "t", METAL_PIXIE_PARTITION_ID: "px" };

  it("proxy DHCP needs the interface, the network and an address machines reach", () => {
    expect(() => loadPixieConfig(env, [])).toThrow(/--interface/);
    expect(() => loadPixieConfig(env, ["--interface", "br0", "--dhcp-network", "10.0.0.0"])).toThrow(/--public-url/);
    const c = loadPixieConfig(env, ["--interface", "br0", "--dhcp-network", "10.0.0.0", "--listen", "10.0.0.1:8081"]);
    expect(c.dhcp).toMatchObject({ iface: "br0", network: "10.0.0.0", ipxeDir: "/usr/lib/ipxe" });
    expect(() => loadPixieConfig(env, ["--interface", "br0", "--dhcp-network", "10.0.0.0/24", "--listen", "10.0.0.1:8081"])).toThrow(/IPv4 address/);
  });

  it("--no-dhcp serves only HTTP; the token comes from a flag, the environment or a file", () => {
    const c = loadPixieConfig(env, ["--no-dhcp", "--listen", "127.0.0.1:0"]);
    expect(c.dhcp).toBeUndefined();
    expect(c.token).toBe("t");
    expect(() => loadPixieConfig({ METAL_PIXIE_PARTITION_ID: "px" }, ["--no-dhcp"])).toThrow(/--token/);
    const dir = mkdtempSync(join(tmpdir(), "pixie-token-"));
    try {
      writeFileSync(join(dir, "token"), "from-file\n");
      expect(loadPixieConfig({ METAL_PIXIE_PARTITION_ID: "px", METAL_PIXIE_TOKEN_FILE: join(dir, "token") }, ["--no-dhcp"]).token).toBe("from-file");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("pixie's iPXE endpoints against a control plane", () => {
  let server: TestServer;
  let token: string;
  const machineId = randomUUID();
  const MAC = "0c:c4:7a:be:ef:01";
  const closers: (() => Promise<void>)[] = [];
  const logged: string[] = [];

  const pixie = async (partition = "ipx", t = token) => {
    const p = await startPixie({ transport: createTransport({ baseUrl: server.url, token: t }), partition, log: (msg, fields) => logged.push(`${msg} ${JSON.stringify(fields)}`) });
    closers.push(p.close);
    return p.url;
  };
  const script = async (url: string) => {
    const res = await fetch(url);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    return { status: res.status, text: await res.text() };
  };

  beforeAll(async () => {
    server = await startTestServer();
    const bootConfig = { kernelUrl: KERNEL, imageUrl: INITRD, commandLine: "console=ttyS0" };
    await server.client(AdminPartitions, server.adminToken).create({ id: "ipx", bootConfig });
    await server.client(AdminPartitions, server.adminToken).create({ id: "ipxnocore", bootConfig });
    token = (await server.client(AdminTokens, server.adminToken).create({ subject: "ipx-agents", roles: { infraPartition: "ipx" } })).secret;
    for (const [i, id] of ["ipxleaf01", "ipxleaf02"].entries())
      await server.client(SwitchService, token).register({ partition: "ipx", id, rack: "r", nics: [{ name: "swp1" }], machineEndpoint: `127.0.0.1:710${i + 1}` });
    await server.grpcClient(BootService, token).register({
      partition: "ipx",
      machineId,
      hardware: {
        memory: 2n ** 30n,
        cpus: [{ model: "x", cores: 1, threads: 1 }],
        nics: [MAC, "0c:c4:7a:be:ef:02"].map((mac, i) => ({ name: `eth${i}`, mac, neighbors: [{ hostname: `ipxleaf0${i + 1}`, port: "swp1" }] })),
      },
    });
  });

  afterAll(async () => {
    await Promise.all(closers.map((c) => c()));
  });

  it("boot.ipxe points back at pixie as the machine reached it", async () => {
    const url = await pixie();
    const { status, text } = await script(`${url}/ipxe/boot.ipxe`);
    expect(status).toBe(200);
    expect(text).toContain(`chain --autofree ${url}/ipxe/\${netX/mac}?uuid=\${uuid}`);
  });

  it("a configured public URL wins over the Host header; one iPXE cannot use is the operator's error, not a crash", async () => {
    const mk = async (publicUrl: string) => {
      const p = await startPixie({ transport: createTransport({ baseUrl: server.url, token }), partition: "ipx", publicUrl });
      closers.push(p.close);
      return p.url;
    };
    expect((await script(`${await mk("http://10.0.0.1:8081")}/ipxe/boot.ipxe`)).text).toContain("chain --autofree http://10.0.0.1:8081/ipxe/");
    const bad = await script(`${await mk("http://10.0.0.1:8081/$x")}/ipxe/boot.ipxe`);
    expect(bad.status).toBe(500);
    expect(bad.text).toMatch(/^#!ipxe\necho pixie: its public URL/);
  });

  it("a known machine's script (its MAC as iPXE sends it, URL-encoded) carries the same boot answer as the API mode", async () => {
    const url = await pixie();
    const { status, text } = await script(`${url}/ipxe/${encodeURIComponent(MAC)}?uuid=`);
    expect(status).toBe(200);
    const lines = text.split("\n");
    expect(lines[0]).toBe("#!ipxe");
    expect(lines[1]!.startsWith(`kernel --name kernel ${KERNEL} initrd=initrd0 console=ttyS0 `)).toBe(true);
    expect(lines[2]).toBe(`initrd --name initrd0 ${INITRD}`);
    expect(lines[3]).toBe("boot kernel");
    const params = parseBootParams(lines[1]!.slice(`kernel --name kernel ${KERNEL} `.length));
    expect(params.machineId).toBe(machineId);
    expect(params.cores).toEqual(["127.0.0.1:7101", "127.0.0.1:7102"]);
    expect(text).not.toContain(token);
    // Neither the credential nor the command line is ever logged.
    expect(logged.join("\n")).not.toContain(params.credential);
    expect(logged.join("\n")).not.toContain("console=ttyS0");
  });

  it("an unknown machine with its UUID boots as that machine; without one it is told why and asks again later", async () => {
    const url = await pixie();
    const uuid = randomUUID();
    const first = await script(`${url}/ipxe/0c-c4-7a-be-ef-11?uuid=${uuid}`);
    expect(first.status).toBe(200);
    expect(first.text).toContain(`metal.machine=${uuid}`);
    const unknown = await script(`${url}/ipxe/0c:c4:7a:be:ef:99?uuid=`);
    expect(unknown.status).toBe(200);
    expect(unknown.text).toMatch(/^#!ipxe\necho pixie: no machine known with MAC 0c:c4:7a:be:ef:99/);
    expect(unknown.text).toContain("sleep 60\nexit 1\n");
    expect(unknown.text).not.toMatch(/^kernel/m);
    const bad = await script(`${url}/ipxe/not-a-mac`);
    expect(bad.status).toBe(400);
  });

  it("no metal-core serving machines yet: a script that waits and asks again", async () => {
    const t = (await server.client(AdminTokens, server.adminToken).create({ subject: "ipxnocore", roles: { infraPartition: "ipxnocore" } })).secret;
    const url = await pixie("ipxnocore", t);
    const { status, text } = await script(`${url}/ipxe/0c:c4:7a:be:ef:21?uuid=${randomUUID()}`);
    expect(status).toBe(200);
    expect(text).toMatch(/echo pixie: no metal-core of partition ipxnocore serves machines yet/);
    expect(text).toContain("sleep 5\nexit 1\n");
  });
});
