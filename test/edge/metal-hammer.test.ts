import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFailoverTransport } from "../../client/failover-transport.js";
import { createTransport } from "../../client/transport.js";
import { formatBootParams } from "../../edge/hammer/boot-params.js";
import { MachineCredential } from "../../edge/hammer/credential.js";
import { type HammerOutcome, MetalHammer } from "../../edge/hammer/hammer.js";
import type { Hardware } from "../../edge/hammer/hardware.js";
import { type SimImage, SimMachine, type SimOs } from "../../edge/sim/machine.js";
import { FilesystemLayoutService as AdminLayouts } from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImages } from "../../gen/metal/admin/v1/image_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { FilesystemLayoutService, Format, GptType } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageFeature } from "../../gen/metal/api/v1/image_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

let server: TestServer;
let fixture: PartitionFixture;
let images: Server;
let imageBase: string;
let tenant: ReturnType<typeof server.client<typeof MachineService>>;
const running: SimMachine[] = [];

const IMAGE: SimImage = { os: "simos", version: "1.0", kernel: "/boot/vmlinuz-6.1", initrd: "/boot/initrd.img-6.1", cmdline: "console=ttyS0" };
const IMAGE2: SimImage = { ...IMAGE, version: "2.0", kernel: "/boot/vmlinuz-6.6" };
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const adminGet = async (id: string) => (await server.client(AdminMachineService, server.adminToken).get({ id })).machine!;
/** The machine's event types, oldest first. */
const history = async (id: string) => ((await adminGet(id)).events?.log ?? []).map((e) => e.type).reverse();

/** Waiting on the Wait stream after the Waiting event (the start-up probe of Wait sets the flag for a moment too). */
const untilWaiting = (id: string) =>
  eventually("waiting", async () => {
    const m = await adminGet(id).catch(() => undefined);
    return m?.waiting && m.events?.log[0]?.type === T.WAITING;
  });

let nic = 0x10;
const macsOf = (n: number) => [`0c:c4:7a:aa:${n.toString(16)}:00`, `0c:c4:7a:aa:${n.toString(16)}:01`];

/** What pixie gets for a booting machine the control plane does not know yet: its UUID's first-boot credential, bound to the MAC. */
async function bootAnswer(uuid: string, mac: string) {
  const answer = await server.client(BootService, fixture.infraToken).boot({ partition: "p1", mac, uuid });
  expect(answer.machineId).toBe(uuid);
  return answer;
}

/** How a simulated machine's hammer reaches the control plane: the partition's infra token (default), or its own credential through a failover transport. */
interface HammerAuth {
  uuid: string;
  n: number;
  transport: Transport;
  /** The credential each boot's hammer holds (a function: pixie hands every PXE boot a fresh one). */
  credential?: MachineCredential | (() => MachineCredential);
  /** The hardware the hammer sees, instead of the simulated machine itself (to make a step fail). */
  hardware?: (m: SimMachine) => Hardware;
  crashRebootMs?: number;
}

/**
 * A simulated machine cabled to leaf01/leaf02 whose PXE boot runs the real
 * metal-hammer; every run's outcome is collected.
 */
function simMachine(net: Interceptor[] = [], auth?: HammerAuth) {
  const uuid = auth?.uuid ?? randomUUID();
  const outcomes: HammerOutcome[] = [];
  const hammers: MetalHammer[] = [];
  const booted: SimOs[] = [];
  const token = fixture.infraToken;
  const transport = auth?.transport ?? createTransport({ baseUrl: server.url, token, interceptors: net });
  const n = auth?.n ?? nic++;
  const [mac0, mac1] = macsOf(n);
  const machine = new SimMachine(
    {
      uuid,
      disks: [
        { name: "/dev/sda", sizeBytes: 120_000_000_000n },
        { name: "/dev/sdb", sizeBytes: 120_000_000_000n },
      ],
      nics: [
        { name: "eth0", mac: mac0!, neighbors: [{ hostname: "leaf01", port: "swp1" }] },
        { name: "eth1", mac: mac1!, neighbors: [{ hostname: "leaf02", port: "swp1" }] },
      ],
    },
    {
      pxeBoot: (m, signal) => {
        const hammer = new MetalHammer({
          transport,
          credential: typeof auth?.credential === "function" ? auth.credential() : auth?.credential,
          partition: "p1",
          hardware: auth?.hardware?.(m) ?? m,
          version: "test",
          // A crashed hammer would reboot into a crash loop; the tests look at one crash.
          timing: { aliveMs: 150, peekMs: 400, backoff: { initialMs: 20, maxMs: 200 }, crashRebootMs: auth?.crashRebootMs ?? 60_000 },
          log: process.env.HAMMER_LOG ? (msg, f) => console.log(uuid.slice(0, 8), msg, f ?? "") : undefined,
        });
        hammers.push(hammer);
        void hammer.run(signal).then((o) => outcomes.push(o));
      },
      osBooted: (_m, os) => booted.push(os),
    },
  );
  running.push(machine);
  return { uuid, machine, outcomes, hammers, booted };
}

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 1_000 } });
  fixture = await setUpPartition(server);
  const good = Buffer.from(JSON.stringify(IMAGE));
  const good2 = Buffer.from(JSON.stringify(IMAGE2));
  const files: Record<string, Buffer | string> = {
    "/simos-1.img": good,
    "/simos-1.img.sha256": `${sha(good)}  simos-1.img\n`,
    "/simos-2.img": good2,
    "/simos-2.img.sha256": `${sha(good2)}  simos-2.img\n`,
    // The checksum of the good image over bytes damaged in transit.
    "/broken.img": Buffer.concat([good.subarray(0, 10), Buffer.from("#"), good.subarray(11)]),
    "/broken.img.sha256": `${sha(good)}  broken.img\n`,
    // No .sha256 next to it: only the image contract's checksum vouches for it.
    "/bare.img": good,
  };
  images = createServer((req, res) => {
    const body = files[req.url ?? ""];
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/octet-stream" }).end(body);
  });
  await new Promise<void>((r) => images.listen(0, "127.0.0.1", r));
  imageBase = `http://127.0.0.1:${(images.address() as { port: number }).port}`;
  const adminImages = server.client(AdminImages, server.adminToken);
  await adminImages.create({ id: "simos-1.0.20250101", url: `${imageBase}/simos-1.img`, features: [ImageFeature.MACHINE] });
  await adminImages.create({ id: "simos-2.0.20250101", url: `${imageBase}/simos-2.img`, features: [ImageFeature.MACHINE] });
  await adminImages.create({ id: "simos-1.1.20250101", url: `${imageBase}/broken.img`, features: [ImageFeature.MACHINE] });
  // Two disks: the OS disk may be wiped on a reinstall, the data disk may not. Layouts may not overlap, so the fixture's takes debian only.
  const adminLayouts = server.client(AdminLayouts, server.adminToken);
  const fixtureLayout = (await server.client(FilesystemLayoutService, server.adminToken).get({ id: "s1-default" })).filesystemLayout!;
  fixtureLayout.constraints!.images = { debian: ">= 12.0" };
  await adminLayouts.update({ filesystemLayout: fixtureLayout });
  await adminLayouts.create({
    filesystemLayout: {
      id: "s1-data",
      disks: [
        {
          device: "/dev/sda",
          wipeOnReinstall: true,
          partitions: [
            { number: 1, sizeMib: 512n, gptType: GptType.BOOT },
            { number: 2, sizeMib: 0n, gptType: GptType.LINUX },
          ],
        },
        { device: "/dev/sdb", wipeOnReinstall: false, partitions: [{ number: 1, sizeMib: 0n, gptType: GptType.LINUX }] },
      ],
      filesystems: [
        { path: "/boot/efi", device: "/dev/sda1", format: Format.VFAT },
        { path: "/", device: "/dev/sda2", format: Format.EXT4 },
        { path: "/data", device: "/dev/sdb1", format: Format.EXT4 },
      ],
      constraints: { sizes: ["s1"], images: { simos: ">= 1.0" } },
    },
  });
  const editor = (await server.client(AdminTokens, server.adminToken).create({ subject: "ed", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  tenant = server.client(MachineService, editor);
});

afterAll(async () => {
  await Promise.all(running.map((m) => m.dispose()));
  await new Promise((r) => images?.close(r));
});

const allocate = (uuid: string, image: string) => tenant.create({ project: "pb", partition: "p1", size: "s1", image, name: "app", hostname: "app-1", networks: [fixture.primary.pb], machineId: uuid });

describe("metal-hammer on a simulated machine", () => {
  it("registers, waits, installs on allocation, kexecs; freed and reset, wipes its disks and waits again", async () => {
    const { uuid, machine, outcomes, booted, hammers } = simMachine();
    machine.powerOn("pxe");

    await untilWaiting(uuid);
    // Alive goes out while the machine waits (never stored, so seen from the hammer's side).
    await eventually("an Alive event", () => hammers[0]!.steps.includes("event ALIVE"));
    const registered = await adminGet(uuid);
    expect(registered.size).toBe("s1");
    expect(registered.rack).toBe("r1");
    expect(registered.hardware?.nics.map((n) => n.mac)).toHaveLength(2);
    expect(await history(uuid)).toEqual([T.PREPARING, T.REGISTERING, T.WAITING]);
    // A fresh machine is wiped before it waits.
    expect(machine.disks.map((d) => d.wipes)).toEqual([1, 1]);

    await allocate(uuid, "simos-1.0.20250101");
    // The OS is up during kexec; the hammer's run ends right after.
    await eventually("the installed OS", () => outcomes.length === 1 && machine.os);
    expect(outcomes).toEqual(["kexec"]);
    expect(booted.map((o) => [o.hostname, o.image, o.boot.kernel])).toEqual([["app-1", "simos-1.0", "/boot/vmlinuz-6.1"]]);
    expect(machine.ops.filter((o) => !o.startsWith("wipe"))).toEqual([
      expect.stringMatching(/^partition \/dev\/sda 1:1-513,2:513-/),
      expect.stringMatching(/^partition \/dev\/sdb 1:1-/),
      "mkfs vfat /dev/sda1",
      "mkfs ext4 /dev/sda2",
      "mkfs ext4 /dev/sdb1",
      "unpack simos-1.0",
      "install",
      "kexec /boot/vmlinuz-6.1",
    ]);
    const installed = await adminGet(uuid);
    expect(installed.allocation?.installed).toBe(true);
    // The console password the hammer generated and handed to the install step is the one the tenant gets.
    const { consolePassword } = await tenant.consolePassword({ id: uuid, project: "pb", reason: "checking the hammer's password" });
    expect(consolePassword).toMatch(/^[a-zA-Z2-9]{16}$/);
    expect(JSON.parse(machine.filesystems.get("/dev/sda2")!.files.get("/etc/metal/install.json")!)).toMatchObject({ consolePassword, hostname: "app-1", machineUuid: uuid, rootDevice: "/dev/sda2" });
    expect(await history(uuid)).toEqual([T.PREPARING, T.REGISTERING, T.WAITING, T.INSTALLING, T.BOOTING_NEW_KERNEL]);
    expect(machine.consoleLog).toContain("app-1 login: ");
    machine.console.write("hostname\n");
    expect(machine.consoleLog).toContain("app-1 login: hostname\r\napp-1\r\napp-1 login: ");
    // What the server's boot-from-disk order and a reset do: the installed OS comes up from the disk and announces itself.
    machine.setBootOrder("disk");
    machine.reset();
    expect(booted.map((o) => o.hostname)).toEqual(["app-1", "app-1"]);
    expect(machine.os?.boot.cmdline).toBe("console=ttyS0 root=/dev/sda2");

    // A PXE boot that was neither a free nor a reinstall: the hammer leaves the installed disks alone and says so.
    const wipesBefore = machine.disks.map((d) => d.wipes);
    machine.setBootOrder("pxe");
    machine.reset();
    await eventually("the hold", async () => (await adminGet(uuid)).events?.log[0]?.type === T.CRASHED);
    expect((await adminGet(uuid)).events?.log[0]?.message).toMatch(/installed but booted the discovery image/);
    expect(machine.disks.map((d) => d.wipes)).toEqual(wipesBefore);
    expect(machine.filesystems.get("/dev/sda2")?.files.has("/etc/metal/boot-info.json")).toBe(true);
    expect((await adminGet(uuid)).allocation?.installed).toBe(true);

    // Free: the server records Machine Reclaim and orders PXE + reset; here the test is the BMC.
    await tenant.delete({ id: uuid, project: "pb" });
    machine.reset();
    await untilWaiting(uuid);
    expect(machine.disks.map((d) => d.wipes)).toEqual([2, 2]);
    expect(machine.disks.map((d) => d.partitions)).toEqual([[], []]);
    expect(machine.filesystems.size).toBe(0);
    expect((await history(uuid)).slice(-4)).toEqual([T.MACHINE_RECLAIM, T.PREPARING, T.REGISTERING, T.WAITING]);
    expect((await adminGet(uuid)).allocation).toBeUndefined();
  });

  it("a corrupt image: Crashed with the checksum error, no disk touched, nothing reported as installed", async () => {
    const { uuid, machine, outcomes, hammers } = simMachine();
    machine.powerOn("pxe");
    await untilWaiting(uuid);
    const opsBefore = machine.ops.length;
    await allocate(uuid, "simos-1.1.20250101");
    await eventually("the crash", async () => (await history(uuid)).includes(T.CRASHED));
    const m = await adminGet(uuid);
    expect(m.events?.log[0]?.type).toBe(T.CRASHED);
    expect(m.events?.log[0]?.message).toMatch(/checksum mismatch/);
    expect(m.allocation?.installed).toBe(false);
    expect(await history(uuid)).not.toContain(T.BOOTING_NEW_KERNEL);
    expect(machine.ops.slice(opsBefore)).toEqual([]);
    expect(hammers[0]!.steps).not.toContain("installation succeeded");
    expect(machine.os).toBeUndefined();
    expect(outcomes).toEqual([]); // waiting to reboot
    machine.powerOff();
    await eventually("the run to stop", () => outcomes.length === 1);
    expect(outcomes).toEqual(["stopped"]);
  });

  it("a contract checksum the file does not match (the .sha256 next to it does): Crashed with the checksum error, no disk touched", async () => {
    const adminImages = server.client(AdminImages, server.adminToken);
    const other = sha(Buffer.from(JSON.stringify(IMAGE2)));
    await adminImages.create({ id: "simos-1.2.20250101", url: `${imageBase}/simos-1.img`, sha256: other, features: [ImageFeature.MACHINE] });
    const { uuid, machine, outcomes, hammers } = simMachine();
    machine.powerOn("pxe");
    await untilWaiting(uuid);
    const opsBefore = machine.ops.length;
    await allocate(uuid, "simos-1.2.20250101");
    await eventually("the crash", async () => (await history(uuid)).includes(T.CRASHED));
    const m = await adminGet(uuid);
    expect(m.events?.log[0]?.message).toMatch(new RegExp(`checksum mismatch \\(expected sha256 ${other}`));
    expect(m.allocation?.installed).toBe(false);
    expect(machine.ops.slice(opsBefore)).toEqual([]);
    expect(hammers[0]!.steps).not.toContain("installation succeeded");
    expect(machine.os).toBeUndefined();
    machine.powerOff();
    await eventually("the run to stop", () => outcomes.length === 1);
  });

  it("an image with a contract checksum and no .sha256 next to it installs", async () => {
    const digest = sha(Buffer.from(JSON.stringify(IMAGE)));
    await server.client(AdminImages, server.adminToken).create({ id: "simos-1.3.20250101", url: `${imageBase}/bare.img`, sha256: digest.toUpperCase(), features: [ImageFeature.MACHINE] });
    const { uuid, machine, outcomes, booted, hammers } = simMachine();
    machine.powerOn("pxe");
    await untilWaiting(uuid);
    await allocate(uuid, "simos-1.3.20250101");
    await eventually("the installed OS", () => outcomes.length === 1 && machine.os);
    expect(outcomes).toEqual(["kexec"]);
    expect(booted.map((o) => o.image)).toEqual(["simos-1.0"]);
    expect(hammers[0]!.steps).toContain(`downloaded ${imageBase}/bare.img (${JSON.stringify(IMAGE).length} bytes, sha256 ${digest.slice(0, 12)}…)`);
    expect((await adminGet(uuid)).allocation?.installed).toBe(true);
  });

  it("a reinstall wipes only the wipeOnReinstall disk; a failed one is aborted and the old OS boots again", async () => {
    const { uuid, machine, outcomes } = simMachine();
    machine.powerOn("pxe");
    await untilWaiting(uuid);
    await allocate(uuid, "simos-1.0.20250101");
    await eventually("the installed OS", () => machine.os);
    machine.filesystems.get("/dev/sdb1")!.files.set("/precious", "tenant data");
    const sdbWipes = machine.disks[1]!.wipes;

    // A reinstall with an image that fails its checksum: aborted, and the old OS (untouched) kexec'd.
    const broken = await server.client(AdminImages, server.adminToken).create({ id: "simos-1.5.20250101", url: `${imageBase}/broken.img`, features: [ImageFeature.MACHINE] });
    expect(broken.image?.id).toBe("simos-1.5.20250101");
    await tenant.reinstall({ id: uuid, project: "pb", image: "simos-1.5.20250101" });
    machine.setBootOrder("pxe");
    machine.reset();
    await eventually("the old OS again", () => outcomes.length === 2 && machine.os);
    expect(outcomes).toEqual(["kexec", "kexec"]);
    const aborted = await adminGet(uuid);
    expect(aborted.allocation?.reinstalling).toBe(false);
    expect(aborted.allocation?.image).toBe("simos-1.0.20250101");
    expect(aborted.events?.log.map((e) => e.type).slice(0, 3)).toEqual([T.BOOTING_NEW_KERNEL, T.CRASHED, T.INSTALLING]);
    expect(machine.os?.boot.kernel).toBe("/boot/vmlinuz-6.1");

    // A reinstall that works: sda is new, sdb and its data stay.
    await tenant.reinstall({ id: uuid, project: "pb", image: "simos-2.0.20250101" });
    machine.reset();
    await eventually("the new OS", () => outcomes.length === 3 && machine.os);
    expect(machine.os?.boot.kernel).toBe("/boot/vmlinuz-6.6");
    expect(machine.disks[1]!.wipes).toBe(sdbWipes);
    expect(machine.filesystems.get("/dev/sdb1")?.files.get("/precious")).toBe("tenant data");
    const done = await adminGet(uuid);
    expect(done.allocation?.image).toBe("simos-2.0.20250101");
    expect(done.allocation?.installed).toBe(true);
  });

  it("the metal-hammer binary: its machine, credential and core from a kernel command line, a simulated machine from Waiting to its installed OS, exit 0", async () => {
    const uuid = randomUUID();
    const answer = await bootAnswer(uuid, "0c:c4:7a:bb:00:00");
    const cmdline = join(server.dataDir, `cmdline-${uuid}`);
    // The server itself stands in for the leaves' metal-cores (it serves the same methods).
    const core = new URL(server.url).host;
    const boot = { machineId: uuid, partition: "p1", credential: answer.machineCredential, credentialExpiresAt: timestampDate(answer.credentialExpiresAt!), cores: [core] };
    await writeFile(cmdline, `BOOT_IMAGE=/vmlinuz console=ttyS0 ${formatBootParams(boot)}\n`);
    const child = spawn(process.execPath, ["bin/metal-hammer.js", "--simulated", "--boot-params", cmdline, "--alive-interval", "0.2", "--sim-disks", "/dev/sda=120000000000,/dev/sdb=120000000000"], {
      env: { ...process.env, METAL_HAMMER_SIM_NICS: "eth0=0c:c4:7a:bb:00:00@leaf03/swp1,eth1=0c:c4:7a:bb:00:01@leaf04/swp1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    try {
      await untilWaiting(uuid);
      expect((await adminGet(uuid)).rack).toBe("r2");
      await allocate(uuid, "simos-2.0.20250101");
      expect(await exited).toBe(0);
      expect(stderr).toContain('"msg":"installed OS booted","os":"simos-2.0 on app-1"');
      expect(stderr).toContain(`"cores":["${core}"]`);
      expect(stderr).not.toContain(answer.machineCredential);
      const m = await adminGet(uuid);
      expect(m.allocation?.installed).toBe(true);
      expect(m.events?.log[0]?.type).toBe(T.BOOTING_NEW_KERNEL);
      // What the discovery image held is void once the installation succeeded.
      await expect(server.client(BootService, answer.machineCredential).renewCredential({ partition: "p1", machineId: uuid })).rejects.toMatchObject({ code: Code.Unauthenticated });
    } finally {
      child.kill();
    }
  });

  it("with its own machine credential through the failover transport: renewed while it runs, registers, waits, installs, kexecs; the credential is void afterwards", async () => {
    const uuid = randomUUID();
    const n = nic++;
    const answer = await bootAnswer(uuid, macsOf(n)[0]!);
    // Told it expires now: the renewal is due at once, so the run renews it.
    const issued = new Date();
    const credential = new MachineCredential({ machineId: uuid, partition: "p1", secret: answer.machineCredential, expiresAt: issued });
    const transport = createFailoverTransport({ endpoints: [server.url], token: () => credential.secret });
    const { machine, outcomes, hammers } = simMachine([], { uuid, n, transport, credential });
    machine.powerOn("pxe");
    await untilWaiting(uuid);
    await eventually("the renewal", () => credential.expiresAt.getTime() > issued.getTime() + 30 * 60_000);
    expect((await adminGet(uuid)).size).toBe("s1");

    await allocate(uuid, "simos-1.0.20250101");
    await eventually("the installed OS", () => outcomes.length === 1 && machine.os);
    expect(outcomes).toEqual(["kexec"]);
    expect((await adminGet(uuid)).allocation?.installed).toBe(true);
    expect(await history(uuid)).toEqual([T.PREPARING, T.REGISTERING, T.WAITING, T.INSTALLING, T.BOOTING_NEW_KERNEL]);
    // Booting New Kernel went out before InstallationSucceeded, and nothing after it.
    expect(hammers[0]!.steps.slice(-4)).toEqual(["install step done", "event BOOTING_NEW_KERNEL", "installation succeeded", "kexec"]);

    // The credential (renewed or not) now does nothing but repeat InstallationSucceeded.
    for (const secret of [credential.secret, answer.machineCredential]) {
      await expect(server.client(BootService, secret).renewCredential({ partition: "p1", machineId: uuid })).rejects.toMatchObject({ code: Code.Unauthenticated });
      await expect(server.client(EventService, secret).send({ partition: "p1", events: [{ machineId: uuid, type: T.ALIVE }] })).rejects.toMatchObject({ code: Code.Unauthenticated });
    }
    const repeat = { partition: "p1", machineId: uuid, consolePassword: "repeated", bootInfo: { imageId: "simos-1.0.20250101" } };
    await server.client(BootService, credential.secret).installationSucceeded(repeat);
    const { consolePassword } = await tenant.consolePassword({ id: uuid, project: "pb", reason: "checking the repeat changed nothing" });
    expect(consolePassword).not.toBe("repeated");
  });

  it("a Register refused for too few known leaves is retried with the hardware read again (an LLDP neighbour that arrived late)", async () => {
    const uuid = randomUUID();
    let reads = 0;
    // The first read sees leaf01 on both NICs (one switch: refused with FailedPrecondition); every later read sees the real cabling.
    const lateNeighbour = (m: SimMachine): Hardware =>
      new Proxy(m, {
        get(target, key) {
          if (key === "inventory")
            return async () => {
              const inv = await target.inventory();
              if (reads++ > 0) return inv;
              return { ...inv, nics: inv.nics.map((nic) => ({ ...nic, neighbors: [{ hostname: "leaf01", port: "swp1" }] })) };
            };
          const v = Reflect.get(target, key, target);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    const { machine, hammers } = simMachine([], { uuid, n: nic++, transport: createTransport({ baseUrl: server.url, token: fixture.infraToken }), hardware: lateNeighbour });
    machine.powerOn("pxe");
    await untilWaiting(uuid);
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(hammers[0]!.steps).toContain("registered s1 in rack r1");
    const nics = (await adminGet(uuid)).hardware!.nics;
    expect(nics.map((n) => n.neighbors.join(","))).toEqual([expect.stringContaining("leaf01"), expect.stringContaining("leaf02")]);
    machine.powerOff();
  });

  it("a kexec that fails after InstallationSucceeded: reboots without reporting anything (a machine credential would be void)", async () => {
    const uuid = randomUUID();
    const n = nic++;
    // The infra token stays good after the installation: a Crashed event sent now would be stored, and seen below.
    const transport = createTransport({ baseUrl: server.url, token: fixture.infraToken });
    let rebooted = false;
    const failingKexec = (m: SimMachine): Hardware =>
      new Proxy(m, {
        get(target, key) {
          if (key === "kexec") return async () => Promise.reject(new Error("kexec: the kernel image is damaged"));
          // The reboot ends the crash: anything the hammer reported, it reported before.
          if (key === "reboot") return async () => void (rebooted = true);
          const v = Reflect.get(target, key, target);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    const { machine, hammers, outcomes } = simMachine([], { uuid, n, transport, hardware: failingKexec, crashRebootMs: 10 });
    machine.powerOn("pxe");
    await untilWaiting(uuid);
    await allocate(uuid, "simos-1.0.20250101");
    await eventually("the reboot after the crash", () => rebooted && outcomes.length === 1);
    expect(outcomes).toEqual(["crashed"]);
    expect(hammers[0]!.steps.slice(-3)).toEqual(["event BOOTING_NEW_KERNEL", "installation succeeded", "crashed: kexec: the kernel image is damaged"]);
    // No Crashed event: the server's boot-from-disk order and the reboot start the installed OS.
    expect(await history(uuid)).toEqual([T.PREPARING, T.REGISTERING, T.WAITING, T.INSTALLING, T.BOOTING_NEW_KERNEL]);
    expect((await adminGet(uuid)).allocation?.installed).toBe(true);
    machine.powerOff();
  });

  it("with its own machine credential, a failed reinstall: Booting New Kernel goes out before AbortReinstall, the old OS is kexec'd, the credential is void after", async () => {
    const uuid = randomUUID();
    const n = nic++;
    const mac = macsOf(n)[0]!;
    const credentialOf = (a: Awaited<ReturnType<typeof bootAnswer>>) =>
      new MachineCredential({ machineId: uuid, partition: "p1", secret: a.machineCredential, expiresAt: timestampDate(a.credentialExpiresAt!) });
    let credential = credentialOf(await bootAnswer(uuid, mac));
    const transport = createFailoverTransport({ endpoints: [server.url], token: () => credential.secret });
    const { machine, outcomes, hammers } = simMachine([], { uuid, n, transport, credential: () => credential });
    machine.powerOn("pxe");
    await untilWaiting(uuid);
    await allocate(uuid, "simos-1.0.20250101");
    await eventually("the installed OS", () => outcomes.length === 1 && machine.os);

    // A reinstall with an image that fails its checksum; pixie gives the reinstall's discovery image a credential of the new generation.
    await tenant.reinstall({ id: uuid, project: "pb", image: "simos-1.1.20250101" });
    credential = credentialOf(await bootAnswer(uuid, mac));
    machine.setBootOrder("pxe");
    machine.reset();
    await eventually("the old OS again", () => outcomes.length === 2 && machine.os);
    expect(outcomes).toEqual(["kexec", "kexec"]);
    expect(hammers[1]!.steps.slice(-3)).toEqual(["event CRASHED", "event BOOTING_NEW_KERNEL", "reinstall aborted"]);
    expect((await history(uuid)).slice(-3)).toEqual([T.INSTALLING, T.CRASHED, T.BOOTING_NEW_KERNEL]);
    // The tenant's old OS runs: what the reinstall's discovery image held does nothing any more.
    await expect(server.client(BootService, credential.secret).renewCredential({ partition: "p1", machineId: uuid })).rejects.toMatchObject({ code: Code.Unauthenticated });
    machine.powerOff();
  });

  it("refuses to act with a credential of another machine: crashes with a message saying so, registering nothing", async () => {
    const other = randomUUID();
    const n = nic++;
    const answer = await bootAnswer(other, macsOf(n)[0]!);
    const credential = new MachineCredential({ machineId: other, partition: "p1", secret: answer.machineCredential, expiresAt: timestampDate(answer.credentialExpiresAt!) });
    const transport = createFailoverTransport({ endpoints: [server.url], token: () => credential.secret });
    const { uuid, machine, hammers } = simMachine([], { uuid: randomUUID(), n, transport, credential });
    machine.powerOn("pxe");
    await eventually("the crash", () => hammers[0]?.steps.find((s) => s.startsWith("crashed:")));
    expect(hammers[0]!.steps.find((s) => s.startsWith("crashed:"))).toBe(
      `crashed: the machine credential is for machine ${other}, but this machine's UUID is ${uuid}: the boot parameters belong to another machine`,
    );
    await expect(server.client(AdminMachineService, server.adminToken).get({ id: uuid })).rejects.toMatchObject({ code: Code.NotFound });
    machine.powerOff();
  });

  it("rides out a flaky control plane: failed calls retried with backoff, a broken Wait stream reopened", async () => {
    let failNext = 0;
    let kill = new AbortController();
    const flaky: Interceptor = (next) => async (req) => {
      if (failNext > 0) {
        failNext--;
        throw new ConnectError("injected outage", Code.Unavailable);
      }
      return next({ ...req, signal: AbortSignal.any([req.signal, kill.signal]) });
    };
    // Every first call of the boot fails a few times: events, Register, the Wait probe.
    failNext = 3;
    const { uuid, machine, hammers } = simMachine([flaky]);
    machine.powerOn("pxe");
    await untilWaiting(uuid);
    expect(failNext).toBe(0);
    // The connection breaks under the open Wait stream; the machine must come back as waiting.
    kill.abort();
    kill = new AbortController();
    await eventually("the wait to be reopened", () => hammers[0]!.waitStreams === 2);
    // The old stream's teardown and the new stream's start may cross; the machine ends up waiting.
    await eventually("waiting on the new stream", async () => (await adminGet(uuid)).waiting);
    failNext = 2;
    await allocate(uuid, "simos-1.0.20250101");
    await eventually("the installed OS", () => machine.os);
    expect(hammers).toHaveLength(1);
    expect((await adminGet(uuid)).allocation?.installed).toBe(true);
  });
});
