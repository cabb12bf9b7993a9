import { execFile, spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, closeSync, createReadStream, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import ssh2 from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { BmcAgent } from "../../edge/bmc/agent.js";
import { formatLeases } from "../../edge/bmc/leases.js";
import { MetalCore } from "../../edge/core/metal-core.js";
import { superviseDnsmasq } from "../../edge/pixie/dnsmasq.js";
import { createPixieHandler } from "../../edge/pixie/pixie.js";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import { FilesystemLayoutService as AdminLayouts } from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImages } from "../../gen/metal/admin/v1/image_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { NetworkService as AdminNetworks } from "../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { SizeService as AdminSizes } from "../../gen/metal/admin/v1/size_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { Format, GptType, LvmType, RaidLevel } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageFeature } from "../../gen/metal/api/v1/image_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { SizeConstraintType } from "../../gen/metal/api/v1/size_pb.js";
import { eventually } from "../helpers/eventually.js";
import { freePort } from "../helpers/free-port.js";
import { has, ip, Processes, RELAY, serveImage, unixToTcp } from "../helpers/netns.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";
import { DISCOVERY_IMAGE_DIR, ensureDiscoveryImage } from "./discovery-image.js";
import { LeafLldpd } from "./leaf-lldpd.js";
import { NamespaceLeaf } from "./namespace-leaf.js";
import { QemuBmc } from "./qemu-bmc.js";
import { buildTestOsImage } from "./test-os/build.js";

/**
 * Issue 17 end to end: a QEMU machine with a blank disk PXE-boots through
 * pixie (proxy DHCP, iPXE script by MAC and UUID) into the discovery image,
 * whose metal-hammer registers the hardware QEMU presents through its leaves'
 * metal-core machine endpoints and waits. `metalctl machine create`
 * allocates it: the hammer partitions the disk by the layout, installs the
 * test OS image (test/boot/test-os), kexecs into it, and the installed system
 * announces itself by LLDP, which the leaves' metal-core reports as Phoned
 * Home. `metalctl machine free`: metal-bmc resets it, it PXE-boots again,
 * wipes its disk and waits.
 *
 * Everything the machine talks to lives on a bridge in a network namespace
 * of the test's own: the partition's DHCP server (another namespace behind a
 * veth), pixie's dnsmasq, and one lldpd per NIC playing leaf01's and
 * leaf02's swp1. pixie's HTTP side, the image files, both metal-cores (their
 * configuration side simulated, their LLDP side those lldpds) and metal-bmc
 * (QEMU's monitor playing the BMC) run in this process and are reached
 * through relays in the namespace (TCP there, Unix socket here), so the
 * host's routes are never touched.
 */

const IPXE_DIR = "/usr/lib/ipxe";
const NIC_ROM = "/usr/lib/ipxe/qemu/efi-e1000.rom";
const IMAGE_DIR = DISCOVERY_IMAGE_DIR;

function skipReason(): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "needs root for network namespaces and tap devices";
  for (const cmd of ["ip", "dnsmasq", "qemu-system-x86_64", "lldpd", "lldpcli", "zstd", "lz4"]) if (!has(cmd)) return `${cmd} is not installed`;
  for (const f of [join(IPXE_DIR, "undionly.kpxe"), NIC_ROM, "/dev/net/tun"]) if (!existsSync(f)) return `${f} is missing`;
  return undefined;
}
const reason = skipReason();

const NS = `vm-boot-${process.pid}`;
const NS_DHCP = `vm-boot-dhcp-${process.pid}`;
const BRIDGE_IP = "10.0.0.1";
const PIXIE_PORT = 8081;
const CORE_PORT = 4443;
const PUBLIC_URL = `http://${BRIDGE_IP}:${PIXIE_PORT}`;
const PARTITION = "vmboot";
const PROJECT = "vmproject";
const IMAGE = "testos-1.0.20261205";
const UUID = randomUUID();
const MACS = ["0c:c4:7a:17:00:01", "0c:c4:7a:17:00:02"];
/** Host side of each NIC: tap name, and the leaf whose swp1 it plays over LLDP. */
const LINKS = [
  { tap: "tapa", leaf: "leaf01" },
  { tap: "tapb", leaf: "leaf02" },
];
const MEMORY_MIB = 1024;
const CPUS = 2;
const DISK_BYTES = 2n * 2n ** 30n;
const MiB = 2n ** 20n;
/** Two data disks mirrored by md RAID1, an LVM volume group on the array: the disk steps the host's kernel cannot run on loop devices (no md or dm modules here), run for real in the VM. */
const DATA_DISK_BYTES = 512n * MiB;
const DATA_DISKS = ["vdb", "vdc"];
const REPO = resolve(".");

let server: TestServer;
let dir: string;
let disk: string;
const dataDisks = DATA_DISKS.map((name) => ({ name, file: "" }));
let editorToken: string;
let privateNetwork: string;
let http: Server | undefined;
const relays: NetServer[] = [];
const cores: MetalCore[] = [];
let bmc: QemuBmc;
const bmcStop = new AbortController();
let bmcRun: Promise<void> | undefined;
let pixieDnsmasq: { close: () => Promise<void> } | undefined;
const procs = new Processes();
const leafLldpds: LeafLldpd[] = [];
const served: string[] = [];
let vmConsole = "";
/** Wall times of the phases, written to $VM_BOOT_TIMINGS (JSON) for `npm run bench`. */
const timings: Record<string, number> = {};

/** The hammer's first log lines (JSON on the console): what it read and decided, before any retry loop fills the tail. */
const hammerHead = () =>
  vmConsole
    .split("\n")
    .filter((l) => l.startsWith('{"time"'))
    .slice(0, 15)
    .join("\n");
// The most telling parts last: a CI log may keep only its tail.
const diagnosis = () =>
  `\n--- served:\n${served.slice(-20).join("\n")}\n--- logs:\n${procs.logs.slice(-30).join("\n")}\n--- console (tail):\n${vmConsole.slice(-3000)}` + `\n--- hammer (first lines):\n${hammerHead()}`;

/** What each leaf's lldpd announces, sent and heard, and whether it still runs (a leaf the machine never hears shows here). */
async function leafLldpState(): Promise<string> {
  const parts = await Promise.all(
    leafLldpds.map(async (l) => {
      const ended = procs.logs.filter((line) => line.startsWith(`lldpd-${l.leaf}: exited`));
      const asked = await Promise.all([l.ask("show", "interfaces"), l.ask("show", "statistics"), l.ask("show", "neighbors", "summary")]);
      return [`${l.leaf}: ${ended.length > 0 ? ended.join("; ") : "running"}; configured again ${l.drifts.length} time(s)`, ...asked.map((a) => a.trim())].join("\n");
    }),
  );
  return `\n--- leaves' lldpd:\n${parts.join("\n")}`;
}

function blankDisk(path: string, bytes: bigint): void {
  const fd = openSync(path, "w");
  ftruncateSync(fd, Number(bytes));
  closeSync(fd);
}

/** `bytes` of a disk file at `offset`. */
function readDisk(path: string, offset: number, bytes: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(bytes);
    readSync(fd, buf, 0, bytes, offset);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** What a partition holds, read from its first and last sectors. */
interface PartitionContent {
  number: number;
  /** An ext4 superblock: 1024 bytes in, magic 0xEF53 at its offset 56. */
  ext4: boolean;
  /** An md superblock of metadata 1.0 (what the hammer creates for RAID1): magic 0xa92b4efc 8 to 12 KiB before the end, 4 KiB aligned. */
  md: boolean;
  /** An LVM physical volume label ("LABELONE" in sector 1); on a RAID1 of metadata 1.0 the array's data starts where the partition does. */
  lvm: boolean;
}

/** What is on a disk file: a GPT (its signature in LBA 1) and what each of its partitions holds. */
function inspectDisk(path: string): { gpt: boolean; partitions: PartitionContent[] } {
  const header = readDisk(path, 512, 92);
  if (header.toString("latin1", 0, 8) !== "EFI PART") return { gpt: false, partitions: [] };
  const entries = readDisk(path, 1024, 128 * 128);
  const partitions: PartitionContent[] = [];
  for (let i = 0; i < 128; i++) {
    const first = Number(entries.readBigUInt64LE(i * 128 + 32));
    const last = Number(entries.readBigUInt64LE(i * 128 + 40));
    if (first === 0) continue;
    const sectors = last - first + 1;
    const mdSector = first + ((sectors - 16) & ~7);
    partitions.push({
      number: i + 1,
      ext4: readDisk(path, first * 512 + 1024 + 56, 2).readUInt16LE(0) === 0xef53,
      md: readDisk(path, mdSector * 512, 4).readUInt32LE(0) === 0xa92b4efc,
      lvm: readDisk(path, first * 512 + 512, 8).toString("latin1") === "LABELONE",
    });
  }
  return { gpt: true, partitions };
}

/** metalctl as a tenant (the project's editor) runs it: the repository's binary, its config kept out of the way. */
function metalctl(args: string[], timeoutMs = scaled(60_000)): Promise<string> {
  return new Promise((resolveRun, reject) => {
    execFile(
      process.execPath,
      [join(REPO, "bin/metalctl.js"), ...args],
      { timeout: timeoutMs, env: { ...process.env, METALCTL_CONFIG: join(dir, "metalctl.yaml"), METALCTL_API_URL: server.url, METALCTL_API_TOKEN: editorToken, NO_COLOR: "1" } },
      (err, stdout, stderr) => (err ? reject(new Error(`metalctl ${args.join(" ")}: ${err.message}\n${stdout}\n${stderr}`)) : resolveRun(stdout)),
    );
  });
}

/** Serves the test OS image under /images/test-os/ (only the image: its checksum comes with the contract). */
function serveTestOs(file: string, req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse): boolean {
  const name = /^\/images\/test-os\/([a-z0-9.]+)$/.exec(req.url ?? "")?.[1];
  if (!name) return false;
  const path = join(dirname(file), name);
  if (name !== basename(file) || !existsSync(path)) {
    res.writeHead(404).end();
    return true;
  }
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": statSync(path).size });
  createReadStream(path).pipe(res);
  return true;
}

/** The machine's events of the current cycle and before, oldest first. */
async function eventTypes(): Promise<T[]> {
  const got = await server.client(AdminMachineService, server.adminToken).get({ id: UUID });
  return [...(got.machine?.events?.log ?? [])].reverse().map((e) => e.type);
}

describe.skipIf(reason !== undefined)(`a QEMU machine boots, is installed, phones home, is freed and wiped${reason ? ` (skipped: ${reason})` : ""}`, () => {
  beforeAll(async () => {
    await ensureDiscoveryImage(IMAGE_DIR);
    const testOs = await buildTestOsImage();
    dir = mkdtempSync(join(tmpdir(), "vm-boot-"));
    // dnsmasq serves TFTP as an unprivileged user after start-up; lldpd's helper reads its config as well.
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, "no-lldpd.conf"), "");
    disk = join(dir, "disk.raw");
    for (const d of dataDisks) d.file = join(dir, `${d.name}.raw`);

    server = await startTestServer();
    const admin = server.adminToken;
    await server.client(AdminPartitions, admin).create({
      id: PARTITION,
      bootConfig: { kernelUrl: `${PUBLIC_URL}/images/metal-hammer/vmlinuz`, imageUrl: `${PUBLIC_URL}/images/metal-hammer/initrd.img`, commandLine: "console=ttyS0" },
    });
    // The machine as QEMU presents it: 2 vCPUs, a little under 1 GiB usable memory, a 2 GiB system disk (and two data disks).
    await server.client(AdminSizes, admin).create({
      id: "vm-small",
      constraints: [
        { type: SizeConstraintType.CORES, min: BigInt(CPUS), max: BigInt(CPUS) },
        { type: SizeConstraintType.MEMORY, min: 512n * MiB, max: BigInt(MEMORY_MIB) * MiB },
        { type: SizeConstraintType.STORAGE, min: DISK_BYTES, max: DISK_BYTES, identifier: "/dev/vda" },
        // A size that constrains storage must cover every disk.
        { type: SizeConstraintType.STORAGE, min: 2n * DATA_DISK_BYTES, max: 2n * DATA_DISK_BYTES, identifier: "/dev/vd[bc]" },
      ],
    });
    // The contract carries the checksum; no .sha256 file is served next to the image.
    await server.client(AdminImages, admin).create({ id: IMAGE, url: `${PUBLIC_URL}/images/test-os/${basename(testOs.file)}`, sha256: testOs.sha256, features: [ImageFeature.MACHINE] });
    await server.client(AdminLayouts, admin).create({
      filesystemLayout: {
        id: "vm-small-testos",
        disks: [
          {
            device: "/dev/vda",
            wipeOnReinstall: true,
            partitions: [
              { number: 1, sizeMib: 64n, gptType: GptType.BOOT },
              { number: 2, sizeMib: 0n, gptType: GptType.LINUX },
            ],
          },
          ...DATA_DISKS.map((d) => ({ device: `/dev/${d}`, wipeOnReinstall: false, partitions: [{ number: 1, sizeMib: 0n, gptType: GptType.RAID }] })),
        ],
        raid: [{ arrayName: "data", devices: DATA_DISKS.map((d) => `/dev/${d}1`), level: RaidLevel.RAID_LEVEL_1 }],
        volumeGroups: [{ name: "vgdata", devices: ["/dev/md/data"] }],
        logicalVolumes: [{ name: "lvdata", volumeGroup: "vgdata", sizeMib: 0n, lvmType: LvmType.LINEAR }],
        filesystems: [
          { path: "/boot/efi", device: "/dev/vda1", format: Format.VFAT },
          { path: "/", device: "/dev/vda2", format: Format.EXT4 },
          { path: "/data", device: "/dev/vgdata/lvdata", format: Format.EXT4 },
        ],
        constraints: { sizes: ["vm-small"], images: { testos: ">= 1.0" } },
      },
    });
    await server.client(AdminNetworks, admin).create({ id: "vm-super", type: NetworkType.SUPER, partition: PARTITION, prefixes: ["10.200.0.0/16"], defaultChildPrefixLength: { ipv4: 24 } });
    await server.client(MdTenantService, admin).create({ tenant: { meta: { id: "vmtenant" }, name: "vmtenant" } });
    await server.client(MdProjectService, admin).create({ project: { meta: { id: PROJECT }, name: PROJECT, tenantId: "vmtenant" } });
    privateNetwork = (await server.client(NetworkService, admin).create({ project: PROJECT, partition: PARTITION })).network!.id;
    editorToken = (await server.client(AdminTokens, admin).create({ subject: "vm-tenant", roles: { projectRoles: { [PROJECT]: ProjectRole.EDITOR } } })).secret;
    const token = (await server.client(AdminTokens, admin).create({ subject: `${PARTITION}-agents`, roles: { infraPartition: PARTITION } })).secret;

    // pixie's HTTP side plus the discovery image's and the test OS's files.
    const handler = createPixieHandler({ transport: createTransport({ baseUrl: server.url, token }), partition: PARTITION, publicUrl: PUBLIC_URL });
    http = createServer((req, res) => {
      res.on("finish", () => served.push(`${res.statusCode} ${req.url}`));
      if (!serveImage(IMAGE_DIR, req, res) && !serveTestOs(testOs.file, req, res)) handler(req, res);
    });
    const pixieSock = join(dir, "pixie.sock");
    await new Promise<void>((ok, fail) => http!.once("error", fail).listen(pixieSock, ok));

    // The PXE network: a bridge with the machine's two taps and a veth to the DHCP server's namespace.
    ip("netns", "add", NS);
    ip("netns", "add", NS_DHCP);
    ip("-n", NS, "link", "add", "br0", "type", "bridge");
    for (const { tap } of LINKS) {
      ip("-n", NS, "tuntap", "add", tap, "mode", "tap");
      ip("-n", NS, "link", "set", tap, "master", "br0");
    }
    ip("-n", NS, "link", "add", "vd0", "type", "veth", "peer", "name", "vd1", "netns", NS_DHCP);
    ip("-n", NS, "link", "set", "vd0", "master", "br0");
    ip("-n", NS, "addr", "add", `${BRIDGE_IP}/24`, "dev", "br0");
    for (const l of ["lo", "br0", "vd0", ...LINKS.map((l) => l.tap)]) ip("-n", NS, "link", "set", l, "up");
    ip("-n", NS_DHCP, "addr", "add", "10.0.0.2/24", "dev", "vd1");
    for (const l of ["lo", "vd1"]) ip("-n", NS_DHCP, "link", "set", l, "up");

    await procs.start(NS, "pixie-relay", [process.execPath, "-e", RELAY, BRIDGE_IP, String(PIXIE_PORT), pixieSock], /relay ready/);

    const dhcpConf = join(dir, "partition-dhcp.conf");
    writeFileSync(
      dhcpConf,
      ["port=0", "interface=vd1", "bind-interfaces", "dhcp-range=10.0.0.100,10.0.0.200,255.255.255.0,1h", `dhcp-leasefile=${join(dir, "partition-dhcp.leases")}`, "pid-file=", ""].join("\n"),
    );
    await procs.start(NS_DHCP, "partition-dhcp", ["dnsmasq", "--keep-in-foreground", `--conf-file=${dhcpConf}`, "--log-facility=-"], /DHCP, IP range/);

    const proxyReady = eventually("pixie's dnsmasq to answer as proxy DHCP", () => procs.logs.some((l) => l.startsWith("pixie-dnsmasq") && /proxy on subnet/.test(l)), scaled(15_000));
    pixieDnsmasq = superviseDnsmasq({
      iface: "br0",
      network: "10.0.0.0",
      bootScriptUrl: `${PUBLIC_URL}/ipxe/boot.ipxe`,
      ipxeDir: IPXE_DIR,
      stateDir: join(dir, "pixie"),
      command: ["ip", "netns", "exec", NS, "dnsmasq"],
      log: (msg, fields) => procs.logs.push(`pixie-dnsmasq: ${msg} ${JSON.stringify(fields)}`),
    });
    await proxyReady;

    // Each leaf: its lldpd on the machine's tap, its metal-core with a machine endpoint of its own, reached from the namespace through a relay.
    for (const [i, { tap, leaf }] of LINKS.entries()) {
      const lldpd = new LeafLldpd(NS, dir, tap, leaf);
      await lldpd.start(procs);
      lldpd.keep((line) => {
        procs.logs.push(line);
        console.log(`vm-boot: ${line}`);
      });
      leafLldpds.push(lldpd);
      const lldpSock = lldpd.socket;
      const port = await freePort();
      const core = new MetalCore({
        url: server.url,
        token,
        partition: PARTITION,
        rack: "r1",
        os: new NamespaceLeaf({ id: leaf, root: join(dir, leaf) }, { namespace: NS, socket: lldpSock, tap, port: "swp1" }),
        settings: { asn: 4200000011 + i, loopback: `10.0.0.${11 + i}` },
        machineListen: `127.0.0.1:${port}`,
        machineEndpoint: `${BRIDGE_IP}:${CORE_PORT + i}`,
        timing: { lldpPollMs: 1_000, phoneHomeMs: 2_000 },
        log: (level, msg, fields) => procs.logs.push(`metal-core ${leaf} ${level}: ${msg} ${JSON.stringify(fields ?? {})}`),
      });
      mkdirSync(join(dir, leaf), { recursive: true });
      cores.push(core);
      core.start();
      relays.push(await unixToTcp(join(dir, `core-${leaf}.sock`), "127.0.0.1", port));
      await procs.start(NS, `core-relay-${leaf}`, [process.execPath, "-e", RELAY, BRIDGE_IP, String(CORE_PORT + i), join(dir, `core-${leaf}.sock`)], /relay ready/);
    }
    // A machine's boot answer names the leaves known at that moment: both must have registered and synced first.
    await eventually("both leaves' metal-core to register and sync", () => cores.every((c) => c.appliedGeneration >= 0), scaled(60_000));

    // metal-bmc, with QEMU's monitor playing the machine's BMC at the one address of its lease file.
    bmc = new QemuBmc(join(dir, "qmp.sock"), UUID);
    const leaseFile = join(dir, "bmc.leases");
    const now = Date.now();
    writeFileSync(leaseFile, `${formatLeases([{ ip: "10.1.0.17", mac: "0c:c4:7a:17:00:ff", starts: new Date(now - 60_000), ends: new Date(now + 86_400_000), state: "active" }])}\n`);
    const agent = new BmcAgent({
      transport: createTransport({ baseUrl: server.url, token }),
      partition: PARTITION,
      agent: "vm-boot-bmc",
      leaseFile,
      stateDir: join(dir, "metal-bmc"),
      adapter: bmc,
      credentials: { user: "ADMIN", password: "ADMIN", interface: "lanplus", port: 623 },
      timing: { pollMs: 1_000, fullReportMs: 10_000, heartbeatMs: 1_000, idleMs: 15_000 },
      log: (msg, fields) => procs.logs.push(`metal-bmc: ${msg} ${JSON.stringify(fields ?? {})}`),
    });
    bmcRun = agent.run(bmcStop.signal);
  });

  afterAll(async () => {
    if (process.env.VM_BOOT_TIMINGS) writeFileSync(process.env.VM_BOOT_TIMINGS, JSON.stringify(timings));
    for (const l of leafLldpds) l.stop();
    const drifts = leafLldpds.flatMap((l) => l.drifts);
    console.log(`vm-boot: the leaves' lldpd had to be configured again ${drifts.length} time(s)${drifts.length > 0 ? `: ${drifts.join("; ")}` : ""}`);
    bmcStop.abort();
    await bmcRun?.catch(() => {});
    procs.killAll();
    await Promise.all(cores.map((c) => c.stop().catch(() => {})));
    await pixieDnsmasq?.close();
    await new Promise<void>((r) => (http ? http.close(() => r()) : r()));
    for (const relay of relays) await new Promise<void>((r) => relay.close(() => r()));
    for (const ns of [NS, NS_DHCP]) spawnSync("ip", ["netns", "del", ns]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    "PXE-boots, registers the hardware QEMU presents through metal-core, matches a size and waits",
    async () => {
      blankDisk(disk, DISK_BYTES);
      for (const d of dataDisks) blankDisk(d.file, DATA_DISK_BYTES);
      const args = ["-m", String(MEMORY_MIB), "-smp", String(CPUS), "-nographic", "-boot", "order=n", "-uuid", UUID, "-qmp", `unix:${join(dir, "qmp.sock")},server=on,wait=off`];
      // discard=unmap: the hammer's blkdiscard on a freed machine punches holes in the file, as an SSD's TRIM frees its blocks.
      for (const file of [disk, ...dataDisks.map((d) => d.file)]) args.push("-drive", `file=${file},if=virtio,format=raw,discard=unmap`);
      args.push("-netdev", `tap,id=n0,ifname=${LINKS[0]!.tap},script=no,downscript=no`, "-device", `e1000,netdev=n0,mac=${MACS[0]}`);
      // Only the first NIC PXE-boots: the second has no option ROM.
      args.push("-netdev", `tap,id=n1,ifname=${LINKS[1]!.tap},script=no,downscript=no`, "-device", `e1000,netdev=n1,mac=${MACS[1]},romfile=`);
      const poweredOn = Date.now();
      // The console (serial, -nographic) is kept apart from the other processes' lines.
      const vm = spawn("ip", ["netns", "exec", NS, "qemu-system-x86_64", ...args], { stdio: ["ignore", "pipe", "pipe"] });
      procs.children.push(vm);
      vm.stdout!.on("data", (c: Buffer) => void (vmConsole += c.toString()));
      vm.stderr!.on("data", (c: Buffer) => void (vmConsole += c.toString()));

      const machines = server.client(AdminMachineService, server.adminToken);
      const m = await eventually(
        "the machine to register and wait",
        async () => {
          const got = await machines.get({ id: UUID }).catch(() => undefined);
          // Waiting: the hammer holds its Wait open and said so in its provisioning events.
          const waitingEvent = got?.machine?.events?.log.some((e) => e.type === T.WAITING);
          return got?.machine?.waiting && waitingEvent ? got.machine : undefined;
        },
        scaled(480_000),
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}${diagnosis()}${await leafLldpState()}`);
      });
      timings.powerOnToWaitingMs = Date.now() - poweredOn;
      console.log(`vm-boot: power-on to Waiting took ${Math.round(timings.powerOnToWaitingMs / 1000)} s`);

      const why = diagnosis();
      expect(m.partition, why).toBe(PARTITION);
      expect(m.size, why).toBe("vm-small");
      expect(m.rack, why).toBe("r1");
      const hw = m.hardware!;
      expect(hw.cpuCores, why).toBe(CPUS);
      // The kernel keeps some of the memory QEMU gives for itself; MemTotal is a little less.
      expect(hw.memoryBytes, why).toBeGreaterThan(BigInt(MEMORY_MIB - 200) * MiB);
      expect(hw.memoryBytes, why).toBeLessThanOrEqual(BigInt(MEMORY_MIB) * MiB);
      expect(
        hw.disks.map((d) => [d.name, d.sizeBytes]),
        why,
      ).toEqual([["/dev/vda", DISK_BYTES], ...DATA_DISKS.map((d) => [`/dev/${d}`, DATA_DISK_BYTES])]);
      const nics = new Map(hw.nics.map((n) => [n.mac, n]));
      for (const [i, mac] of MACS.entries()) {
        expect(nics.get(mac), why).toBeDefined();
        expect(nics.get(mac)!.neighbors.join(","), why).toContain(LINKS[i]!.leaf);
      }
      const events = await eventTypes();
      for (const t of [T.PXE_BOOTING, T.PREPARING, T.REGISTERING, T.WAITING]) expect(events, why).toContain(t);
      // The machine fetched the discovery image from where its partition's boot config says.
      expect(
        served.some((s) => s.startsWith("200 /images/metal-hammer/initrd.img")),
        why,
      ).toBe(true);
      // The machine has a BMC the control plane knows, through metal-bmc (needed to free it below).
      const reported = await eventually("metal-bmc to report the machine's BMC", async () => (await machines.get({ id: UUID })).machine?.bmc, scaled(30_000));
      expect(reported.address, why).toContain("10.1.0.17");
      expect(reported.powerState, why).toBe("ON");
    },
    scaled(540_000),
  );

  it(
    "metalctl machine create: partitions the disk by the layout, installs the test OS, kexecs into it, and the installed system phones home",
    async () => {
      const key = ssh2.utils.generateKeyPairSync("ed25519").public;
      const allocatedAt = Date.now();
      const created = JSON.parse(
        await metalctl([
          "machine",
          "create",
          "--project",
          PROJECT,
          "--partition",
          PARTITION,
          "--size",
          "vm-small",
          "--image",
          "testos-1.0",
          "--hostname",
          "vm-1",
          "--id",
          UUID,
          "--networks",
          privateNetwork,
          "--sshpublickey",
          key,
          "-o",
          "json",
        ]),
      ) as { id: string };
      expect(created.id).toBe(UUID);
      // metalctl follows the machine's log until the installed OS phones home.
      await metalctl(["machine", "logs", UUID, "--project", PROJECT, "--until", "phoned home"], scaled(600_000)).catch(async (err: Error) => {
        throw new Error(`${err.message}${diagnosis()}${await leafLldpState()}`);
      });
      timings.allocateToPhonedHomeMs = Date.now() - allocatedAt;
      console.log(`vm-boot: allocation to Phoned Home took ${Math.round(timings.allocateToPhonedHomeMs / 1000)} s`);
      const why = diagnosis();
      const log = await metalctl(["machine", "logs", UUID, "--project", PROJECT]);
      console.log(`vm-boot: metalctl machine logs\n${log}`);
      const order = ["PXE Booting", "Preparing", "Registering", "Waiting", "Installing", "Booting New Kernel", "Phoned Home"];
      const positions = order.map((label) => log.indexOf(label));
      expect(
        positions.every((p) => p >= 0),
        `${log}${why}`,
      ).toBe(true);
      expect(
        [...positions].sort((a, b) => a - b),
        `${log}${why}`,
      ).toEqual(positions);
      // The installed system says so on its console too: its lldpd speaks before its init prints the line, so the
      // Phoned Home event can come first.
      await eventually("the installed system's line on its console", () => vmConsole.includes(`metal-test-os: up, machine ${UUID}`), scaled(120_000)).catch(async (err: Error) => {
        throw new Error(`${err.message}${diagnosis()}${await leafLldpState()}`);
      });
      // The disk holds what the layout asked for.
      expect(inspectDisk(disk), why).toEqual({
        gpt: true,
        partitions: [
          { number: 1, ext4: false, md: false, lvm: false },
          { number: 2, ext4: true, md: false, lvm: false },
        ],
      });
      // Both data disks: one partition, a member of the RAID1 that holds the LVM physical volume.
      for (const d of dataDisks) expect(inspectDisk(d.file), `${d.name}${why}`).toEqual({ gpt: true, partitions: [{ number: 1, ext4: false, md: true, lvm: true }] });
      expect(
        served.some((s) => s.startsWith("200 /images/test-os/")),
        why,
      ).toBe(true);
    },
    scaled(660_000),
  );

  it(
    "metalctl machine free: metal-bmc resets it, it PXE-boots the discovery image again, wipes the disk and waits",
    async () => {
      const before = (await eventTypes()).length;
      const freedAt = Date.now();
      await metalctl(["machine", "free", UUID, "--project", PROJECT]);
      await eventually(
        "the freed machine to wipe its disk and wait",
        async () => {
          const got = await server.client(AdminMachineService, server.adminToken).get({ id: UUID });
          const since = [...(got.machine?.events?.log ?? [])]
            .reverse()
            .slice(before)
            .map((e) => e.type);
          return !got.machine?.allocation && got.machine?.waiting && since.includes(T.PXE_BOOTING) && since.includes(T.WAITING);
        },
        scaled(480_000),
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}${diagnosis()}${await leafLldpState()}`);
      });
      timings.freeToWaitingMs = Date.now() - freedAt;
      console.log(`vm-boot: free to Waiting (wiped) took ${Math.round(timings.freeToWaitingMs / 1000)} s`);
      const why = diagnosis();
      expect(bmc.executed, why).toContain("RESET");
      // Wiped, every disk: no partition table, no filesystem, RAID or LVM header left (the hammer waits only after wiping).
      for (const file of [disk, ...dataDisks.map((d) => d.file)]) {
        expect(inspectDisk(file), `${file}${why}`).toEqual({ gpt: false, partitions: [] });
        expect(readDisk(file, 0, 1024 * 1024).equals(Buffer.alloc(1024 * 1024)), `${file}${why}`).toBe(true);
      }
      console.log(`vm-boot: disk file after the wipe: ${statSync(disk).blocks * 512} bytes allocated of ${DISK_BYTES}`);
    },
    scaled(540_000),
  );
});
