import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { superviseDnsmasq } from "../../edge/pixie/dnsmasq.js";
import { createPixieHandler } from "../../edge/pixie/pixie.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { eventually } from "../helpers/eventually.js";
import { RELAY } from "../helpers/netns.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * A real PXE boot: QEMU's NIC ROM (iPXE, from Debian's ipxe-qemu) asks for
 * an address on a bridge in a network namespace of the test's own, where a
 * dnsmasq plays the partition's DHCP server and pixie's dnsmasq answers as
 * proxy DHCP. iPXE must then fetch pixie's boot.ipxe, its own script by MAC
 * and UUID, and the kernel that script names.
 *
 * pixie's HTTP server runs in this process (it needs the control plane on
 * this namespace's loopback); a small relay in the namespace carries the
 * machine's connections to it over a Unix socket, which no network
 * namespace separates.
 */

const IPXE_DIR = "/usr/lib/ipxe";
const NIC_ROM = "/usr/lib/ipxe/qemu/efi-e1000.rom";

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
function skipReason(): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "needs root for network namespaces and tap devices";
  for (const cmd of ["ip", "dnsmasq", "qemu-system-x86_64"]) if (!has(cmd)) return `${cmd} is not installed (packages iproute2, dnsmasq-base, qemu-system-x86)`;
  for (const f of [join(IPXE_DIR, "undionly.kpxe"), join(IPXE_DIR, "ipxe.efi")]) if (!existsSync(f)) return `${f} is missing (package ipxe)`;
  if (!existsSync(NIC_ROM)) return `${NIC_ROM} is missing (package ipxe-qemu)`;
  if (!existsSync("/dev/net/tun")) return "/dev/net/tun is missing";
  return undefined;
}
const reason = skipReason();

/** UEFI firmware whose own PXE client (not iPXE) boots a virtio NIC: the TFTP path to ipxe.efi. Debian's ovmf package. */
const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS.fd";
const uefiReason = existsSync(OVMF_CODE) && existsSync(OVMF_VARS) ? undefined : `${OVMF_CODE} is missing (package ovmf)`;

const NS = `pixie-pxe-${process.pid}`;
/** The partition's DHCP server: another host on the PXE network. */
const NS_DHCP = `pixie-dhcp-${process.pid}`;
const PIXIE_IP = "10.0.0.1";
const PIXIE_PORT = 8081;
const PUBLIC_URL = `http://${PIXIE_IP}:${PIXIE_PORT}`;
const KERNEL = `${PUBLIC_URL}/images/metal-hammer/vmlinuz`;
const MAC = "0c:c4:7a:5e:b0:01";
/** Random: a firmware or iPXE that byte-swapped the first fields of the SMBIOS UUID would show. */
const UUID = randomUUID();

const ip = (...args: string[]) => {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
};

interface Served {
  url: string;
  status: number;
  body: string;
}

let server: TestServer;
let token: string;
let dir: string;
let http: Server | undefined;
let pixieDnsmasq: { close: () => Promise<void> } | undefined;
const children: ChildProcess[] = [];
const served: Served[] = [];
const logs: string[] = [];

/** Starts `cmd` in `ns`, its output into `logs` under `name`; resolves once a line matches `ready`. */
function startIn(ns: string, name: string, cmd: string[], ready: RegExp): Promise<ChildProcess> {
  const proc = spawn("ip", ["netns", "exec", ns, ...cmd], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(proc);
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        if (line.trim() === "") continue;
        logs.push(`${name}: ${line}`);
        if (ready.test(line)) resolve(proc);
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    proc.once("exit", (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${logs.filter((l) => l.startsWith(name)).join("\n")}`)));
  });
}

/** The partition's leaves register their metal-cores' machine endpoints (again: registering is idempotent). */
async function registerLeaves(): Promise<void> {
  for (const [i, id] of ["pxeleaf01", "pxeleaf02"].entries())
    await server.client(SwitchService, token).register({ partition: "pxe", id, rack: "r", nics: [{ name: "swp1" }], machineEndpoint: `10.0.0.${i + 11}:4443` });
}

/** A QEMU machine on `tap` of the PXE network; its console collects into the returned object. */
function startMachine(tap: string, device: string, extra: string[] = []): { console: () => string } {
  const args = ["netns", "exec", NS, "qemu-system-x86_64", "-m", "256", "-nographic", "-no-reboot", "-display", "none", ...extra];
  args.push("-netdev", `tap,id=n0,ifname=${tap},script=no,downscript=no`, "-device", device);
  const qemu = spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(qemu);
  let out = "";
  qemu.stdout!.on("data", (c: Buffer) => void (out += c.toString()));
  qemu.stderr!.on("data", (c: Buffer) => void (out += c.toString()));
  return { console: () => out };
}

const diagnosis = (console: string) => `\n--- served:\n${served.map((s) => `${s.status} ${s.url}`).join("\n")}\n--- console:\n${console.slice(-3000)}\n--- logs:\n${logs.slice(-40).join("\n")}`;

describe.skipIf(reason !== undefined)(`pixie boots a QEMU machine over PXE for real${reason ? ` (skipped: ${reason})` : ""}`, () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "pixie-pxe-"));
    // dnsmasq serves TFTP as an unprivileged user after start-up: it must reach the TFTP root below.
    chmodSync(dir, 0o755);

    server = await startTestServer();
    await server.client(AdminPartitions, server.adminToken).create({ id: "pxe", bootConfig: { kernelUrl: KERNEL, imageUrl: `${PUBLIC_URL}/images/metal-hammer/initrd.img`, commandLine: "console=ttyS0" } });
    token = (await server.client(AdminTokens, server.adminToken).create({ subject: "pxe-agents", roles: { infraPartition: "pxe" } })).secret;
    // No leaf has registered its metal-core yet: the test does that once the machine was told to wait.

    // pixie's HTTP side, recording what it served.
    const handler = createPixieHandler({ transport: createTransport({ baseUrl: server.url, token }), partition: "pxe", publicUrl: PUBLIC_URL });
    http = createServer((req, res) => {
      const chunks: string[] = [];
      const end = res.end.bind(res);
      res.end = ((body?: unknown, ...rest: unknown[]) => {
        if (typeof body === "string") chunks.push(body);
        served.push({ url: req.url ?? "", status: res.statusCode, body: chunks.join("") });
        return (end as (...a: unknown[]) => typeof res)(body, ...rest);
      }) as typeof res.end;
      handler(req, res);
    });
    const sock = join(dir, "pixie.sock");
    await new Promise<void>((resolve, reject) => http!.once("error", reject).listen(sock, resolve));

    // The PXE network: a bridge with the machine's tap device, and a veth to the DHCP server's namespace.
    ip("netns", "add", NS);
    ip("netns", "add", NS_DHCP);
    ip("-n", NS, "link", "add", "br0", "type", "bridge");
    ip("-n", NS, "tuntap", "add", "tap0", "mode", "tap");
    ip("-n", NS, "link", "set", "tap0", "master", "br0");
    ip("-n", NS, "tuntap", "add", "tap1", "mode", "tap");
    ip("-n", NS, "link", "set", "tap1", "master", "br0");
    ip("-n", NS, "link", "add", "vd0", "type", "veth", "peer", "name", "vd1", "netns", NS_DHCP);
    ip("-n", NS, "link", "set", "vd0", "master", "br0");
    ip("-n", NS, "addr", "add", `${PIXIE_IP}/24`, "dev", "br0");
    for (const l of ["lo", "br0", "tap0", "tap1", "vd0"]) ip("-n", NS, "link", "set", l, "up");
    ip("-n", NS_DHCP, "addr", "add", "10.0.0.2/24", "dev", "vd1");
    for (const l of ["lo", "vd1"]) ip("-n", NS_DHCP, "link", "set", l, "up");

    await startIn(NS, "relay", [process.execPath, "-e", RELAY, PIXIE_IP, String(PIXIE_PORT), sock], /relay ready/);

    // The partition's own DHCP server: it hands out the addresses, pixie only boot files.
    const dhcpConf = join(dir, "partition-dhcp.conf");
    writeFileSync(
      dhcpConf,
      ["port=0", "interface=vd1", "bind-interfaces", "dhcp-range=10.0.0.100,10.0.0.200,255.255.255.0,1h", `dhcp-leasefile=${join(dir, "partition-dhcp.leases")}`, "pid-file=", ""].join("\n"),
    );
    await startIn(NS_DHCP, "partition-dhcp", ["dnsmasq", "--keep-in-foreground", `--conf-file=${dhcpConf}`, "--log-facility=-"], /DHCP, IP range/);

    const proxyReady = eventually("pixie's dnsmasq to answer as proxy DHCP", () => logs.some((l) => l.startsWith("pixie-dnsmasq") && /proxy on subnet/.test(l)), scaled(15_000));
    pixieDnsmasq = superviseDnsmasq({
      iface: "br0",
      network: "10.0.0.0",
      bootScriptUrl: `${PUBLIC_URL}/ipxe/boot.ipxe`,
      ipxeDir: IPXE_DIR,
      stateDir: join(dir, "pixie"),
      command: ["ip", "netns", "exec", NS, "dnsmasq"],
      log: (msg, fields) => logs.push(`pixie-dnsmasq: ${msg} ${JSON.stringify(fields)}`),
    });
    await proxyReady;
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await pixieDnsmasq?.close();
    await new Promise<void>((r) => (http ? http.close(() => r()) : r()));
    for (const ns of [NS, NS_DHCP]) spawnSync("ip", ["netns", "del", ns]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    "the machine's iPXE gets boot.ipxe from pixie's proxy DHCP, then its own script by MAC and UUID (after waiting for the leaves' metal-cores), and runs it",
    async () => {
      // SeaBIOS with the e1000's ROM from ipxe-qemu: the firmware's PXE client is iPXE already.
      const vm = startMachine("tap0", `e1000,netdev=n0,mac=${MAC}`, ["-boot", "order=n", "-uuid", UUID]);
      const why = () => diagnosis(vm.console());
      // No metal-core serves machines yet: the machine is told so on its console, and asks again.
      await eventually("the machine to be told to wait for a metal-core", () => served.some((s) => s.body.includes("no metal-core of partition pxe")), scaled(45_000)).catch((err: Error) => {
        throw new Error(`${err.message}${why()}`);
      });
      await registerLeaves();
      // The machine ran its script: it asked for the kernel the script names.
      await eventually("the machine to fetch the kernel its script names", () => served.some((s) => s.url.startsWith("/images/metal-hammer/vmlinuz")), scaled(45_000)).catch((err: Error) => {
        throw new Error(`${err.message}${why()}`);
      });
      children.at(-1)!.kill("SIGKILL");

      const urls = served.map((s) => s.url);
      const first = urls.indexOf("/ipxe/boot.ipxe");
      expect(first, why()).toBeGreaterThanOrEqual(0);
      const own = served.filter((s) => s.url.startsWith("/ipxe/") && s.url !== "/ipxe/boot.ipxe");
      expect(urls.indexOf(own[0]!.url)).toBeGreaterThan(first);
      // The refusal, then (boot.ipxe asking again) the machine's script.
      expect(own[0]!.body).toMatch(/^#!ipxe\necho pixie: no metal-core/);
      // iPXE sends ${netX/mac} URL-encoded and ${uuid} as SMBIOS has it: the UUID QEMU was given.
      const script = own.at(-1)!;
      expect(decodeURIComponent(own[0]!.url)).toBe(`/ipxe/${MAC}?uuid=${UUID}`);
      expect(decodeURIComponent(script.url)).toBe(`/ipxe/${MAC}?uuid=${UUID}`);
      expect(script.status).toBe(200);
      expect(script.body.startsWith(`#!ipxe\nkernel --name kernel ${KERNEL} initrd=initrd0 console=ttyS0 `)).toBe(true);
      // Unknown to the control plane, it boots as the machine its UUID names, through its partition's metal-cores.
      expect(script.body).toContain(`metal.machine=${UUID}`);
      expect(script.body).toContain("metal.cores=10.0.0.11:4443,10.0.0.12:4443");
      const m = (await server.client(AdminMachineService, server.adminToken).get({ id: UUID })).machine!;
      expect(m.events?.log.map((e) => e.type)).toContain(T.PXE_BOOTING);
      // The console shows where the boot file came from: pixie's proxy DHCP, not the partition's DHCP server.
      expect(vm.console()).toContain(`Filename: ${PUBLIC_URL}/ipxe/boot.ipxe`);
    },
    scaled(60_000),
  );
  it.skipIf(uefiReason !== undefined)(
    `UEFI firmware without iPXE gets ipxe.efi over TFTP from pixie's dnsmasq, and that iPXE boots the same way${uefiReason ? ` (skipped: ${uefiReason})` : ""}`,
    async () => {
      await registerLeaves();
      const mac = "0c:c4:7a:5e:b0:02";
      const uuid = randomUUID();
      const vars = join(dir, "OVMF_VARS.fd");
      copyFileSync(OVMF_VARS, vars);
      // OVMF's own virtio-net driver and PXE client; no option ROM, so no iPXE until pixie hands it out.
      const vm = startMachine("tap1", `virtio-net-pci,netdev=n0,mac=${mac},romfile=`, [
        ...["-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, "-drive", `if=pflash,format=raw,file=${vars}`, "-uuid", uuid],
      ]);
      const mine = (s: Served) => decodeURIComponent(s.url).startsWith(`/ipxe/${mac}`);
      await eventually(
        "the UEFI machine to fetch the kernel its script names",
        () => {
          const at = served.findIndex(mine);
          return at >= 0 && served.slice(at + 1).some((s) => s.url.startsWith("/images/metal-hammer/vmlinuz"));
        },
        scaled(90_000),
      ).catch((err: Error) => {
        throw new Error(`${err.message}${diagnosis(vm.console())}`);
      });
      children.at(-1)!.kill("SIGKILL");
      expect(
        logs.some((l) => l.startsWith("pixie-dnsmasq") && /sent \S+\/ipxe\.efi to/.test(l)),
        diagnosis(vm.console()),
      ).toBe(true);
      const script = served.find(mine)!;
      expect(decodeURIComponent(script.url)).toBe(`/ipxe/${mac}?uuid=${uuid}`);
      expect(script.body).toContain(`metal.machine=${uuid}`);
      expect(vm.console()).toContain("NBP filename is ipxe.efi");
    },
    scaled(100_000),
  );
});
