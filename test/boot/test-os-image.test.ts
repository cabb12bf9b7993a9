import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InstallConfig, InstalledBoot } from "../../edge/hammer/hardware.js";
import { planStorage, type StoragePlan } from "../../edge/hammer/layout.js";
import { LinuxHardware } from "../../edge/hammer/linux/linux-hardware.js";
import { spawnRunner } from "../../edge/hammer/linux/runner.js";
import { FilesystemLayoutSchema, Format, GptType } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { eventually } from "../helpers/eventually.js";
import { has, ip, Processes, runIn } from "../helpers/netns.js";
import { scaled } from "../helpers/timeouts.js";
import { type BuiltImage, buildTestOsImage } from "./test-os/build.js";
import { BOOTLOADER_ID, LLDPD_CONF, PHONED_HOME_MARK, UP_LINE } from "./test-os/scripts.js";

/**
 * The test OS image boots on its own: built from the discovery image,
 * installed onto a 1 GiB disk the way metal-hammer installs (its Linux
 * adapter: wipe, partition, format, unpack, install step in a chroot, on a
 * loop device), then started by QEMU with the kernel, initrd and command
 * line its install step reported, as kexec would. It must come up and phone
 * home: LLDP frames with the machine id as system name and a description
 * saying "provisioned", seen by an lldpd on the tap's side playing the
 * switch port, in a network namespace of the test's own.
 */

function skipReason(): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "needs root (loop devices, mount, chroot, network namespaces, taps)";
  for (const cmd of ["ip", "qemu-system-x86_64", "lldpd", "lldpcli", "sgdisk", "losetup", "mkfs.ext4", "blkid", "wipefs", "tar", "lz4", "zstd", "chroot"]) if (!has(cmd)) return `${cmd} is not installed`;
  if (!existsSync("/dev/net/tun")) return "/dev/net/tun is missing";
  // A container may see /dev/loop* and still not attach one: attach one.
  const probe = mkdtempSync(join(tmpdir(), "loop-probe-"));
  try {
    writeFileSync(join(probe, "probe.img"), Buffer.alloc(1024 * 1024));
    const dev = execFileSync("losetup", ["--find", "--show", join(probe, "probe.img")], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
    execFileSync("losetup", ["-d", dev]);
  } catch (err) {
    return `cannot attach a loop device: ${String(err).slice(0, 200)}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
  return undefined;
}
const reason = skipReason();

const NS = `test-os-${process.pid}`;
const TAP = "tap0";
const MAC = "0c:c4:7a:17:0e:01";
const DISK_BYTES = 2 ** 30;
const MACHINE = randomUUID();
const HOSTNAME = "test-os-1";

let dir = "";
let loop = "";
let hw: LinuxHardware | undefined;
let image: BuiltImage;
let nsCreated = false;
let vmConsole = "";
const procs = new Processes();

const config = (over: Partial<InstallConfig> = {}): InstallConfig => ({
  machineUuid: MACHINE,
  hostname: HOSTNAME,
  sshPublicKeys: [],
  // A line that looks like a key of its own: the install step must not read it as the hostname.
  userData: '#cloud-config\n  "hostname": "not-this-one",\n',
  consolePassword: "console-pw",
  networks: [],
  dnsServers: [],
  ntpServers: [],
  role: "machine",
  rootDevice: `${loop}p1`,
  ...over,
});

/** The neighbours an lldpd sees, as (system name, description) pairs, from `lldpcli -f json show neighbors`. */
function neighborsOf(json: string): { name: string; descr: string }[] {
  const doc = JSON.parse(json) as { lldp?: { interface?: unknown } };
  const ifaces = doc.lldp?.interface;
  // One interface is an object keyed by its name, several an array of such objects.
  const list = (Array.isArray(ifaces) ? ifaces : ifaces ? [ifaces] : []).flatMap((o) => Object.values(o as Record<string, unknown>));
  return list.flatMap((iface) => {
    const chassis = (iface as { chassis?: Record<string, { descr?: string }> }).chassis ?? {};
    return Object.entries(chassis).map(([name, c]) => ({ name, descr: c.descr ?? "" }));
  });
}

const diagnosis = () => `\n--- logs:\n${procs.logs.slice(-30).join("\n")}\n--- console (tail):\n${vmConsole.slice(-6000)}`;

describe.skipIf(reason !== undefined)(`the test OS image installs like metal-hammer installs it and boots on its own${reason ? ` (skipped: ${reason})` : ""}`, () => {
  let plan: StoragePlan;
  let boot: InstalledBoot;
  const bootFiles = { kernel: "", initrd: "" };

  beforeAll(async () => {
    image = await buildTestOsImage({ log: (l) => console.log(`test-os: ${l}`) });
    console.log(`test-os: image ${image.bytes} bytes (${(image.bytes / 2 ** 20).toFixed(1)} MiB), sha256 ${image.sha256}`);
    dir = mkdtempSync(join(tmpdir(), "test-os-"));
    // lldpd's privilege-separated helper reads its (empty) config from here.
    chmodSync(dir, 0o755);
    const disk = join(dir, "disk.raw");
    writeFileSync(disk, "");
    execFileSync("truncate", ["-s", String(DISK_BYTES), disk]);
    loop = execFileSync("losetup", ["--find", "--show", "--partscan", disk], { encoding: "utf8" }).trim();
    hw = new LinuxHardware({ runner: spawnRunner(), targetDir: join(dir, "root"), scratchDir: join(dir, "scratch"), deviceWaitMs: scaled(30_000) });
    const layout = create(FilesystemLayoutSchema, {
      id: "test-os",
      disks: [{ device: loop, wipeOnReinstall: true, partitions: [{ number: 1, sizeMib: 0n, gptType: GptType.LINUX, label: "root" }] }],
      filesystems: [
        { path: "/", device: `${loop}p1`, format: Format.EXT4, label: "root", createOptions: ["-m", "0"] },
        { path: "/tmp", device: "tmpfs", format: Format.TMPFS },
      ],
    });
    plan = planStorage(layout, { disks: [{ name: loop, sizeBytes: BigInt(DISK_BYTES) }] }, [loop]);
  });

  afterAll(async () => {
    procs.killAll();
    await hw?.unmount().catch(() => {});
    if (dir) {
      const mounts = readFileSync("/proc/self/mountinfo", "utf8");
      for (const sub of ["root/sys", "root/proc", "root/dev", "root/tmp", "root"]) {
        const at = join(dir, sub);
        if (mounts.includes(` ${at} `)) spawnSync("umount", ["--recursive", "--lazy", at]);
      }
    }
    if (loop) spawnSync("losetup", ["-d", loop]);
    if (nsCreated) spawnSync("ip", ["netns", "del", NS]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("is built from the discovery image without metal-hammer and Node, and rebuilt only when its inputs change", async () => {
    expect(readFileSync(`${image.file}.sha256`, "utf8")).toBe(`${image.sha256}  rootfs.tar.lz4\n`);
    const names = execFileSync("sh", ["-c", 'lz4 -dc "$1" | tar -t', "sh", image.file], { encoding: "utf8", maxBuffer: 1 << 26 }).split("\n");
    for (const f of ["./boot/vmlinuz", "./boot/initrd.img", "./usr/sbin/init", "./usr/local/bin/metal-install", "./usr/sbin/lldpd", "./usr/bin/busybox"]) expect(names).toContain(f);
    for (const f of ["./usr/bin/node", "./opt/metal/metal-hammer.mjs", "./init"]) expect(names).not.toContain(f);
    const before = statSync(image.file).mtimeMs;
    const again = await buildTestOsImage();
    expect(again).toEqual(image);
    expect(statSync(image.file).mtimeMs).toBe(before);
  });

  it(
    "installs onto a disk partitioned and formatted by metal-hammer's Linux adapter, and reports how it boots",
    async () => {
      await hw!.wipeDisk(loop);
      for (const d of plan.disks) await hw!.partitionDisk(d);
      for (const f of plan.format) await hw!.format(f);
      await hw!.unpackImage(image.file, plan.filesystems);
      const root = join(dir, "root");
      expect(existsSync(join(root, "usr/sbin/init"))).toBe(true);

      // Something missing: the step refuses, saying what.
      await expect(hw!.runInstallStep(config({ rootDevice: "" }))).rejects.toThrow(/rootDevice is missing/);

      boot = await hw!.runInstallStep(config());
      const rootUuid = execFileSync("blkid", ["-c", "/dev/null", "-s", "UUID", "-o", "value", `${loop}p1`], { encoding: "utf8" }).trim();
      expect(rootUuid).toMatch(/^[0-9a-f-]{36}$/);
      expect(boot).toEqual({ kernel: "/boot/vmlinuz", initrd: "/boot/initrd.img", cmdline: `console=ttyS0 root=UUID=${rootUuid} rw`, bootloaderId: BOOTLOADER_ID });
      expect(readFileSync(join(root, "etc/hostname"), "utf8")).toBe(`${HOSTNAME}\n`);
      expect(readFileSync(join(root, LLDPD_CONF), "utf8")).toBe(`configure system hostname ${MACHINE}\nconfigure system description "metal-test-os ${PHONED_HOME_MARK}, hostname ${HOSTNAME}"\n`);

      // What kexec would load, taken off the disk before it is let go.
      bootFiles.kernel = join(dir, "vmlinuz");
      bootFiles.initrd = join(dir, "initrd.img");
      copyFileSync(join(root, boot.kernel), bootFiles.kernel);
      copyFileSync(join(root, boot.initrd), bootFiles.initrd);
      await hw!.unmount();
      execFileSync("losetup", ["-d", loop]);
      loop = "";
    },
    scaled(300_000),
  );

  it(
    "boots in QEMU from that disk, comes up and announces the machine id as provisioned over LLDP",
    async () => {
      expect(boot, "the install test ran first").toBeDefined();
      ip("netns", "add", NS);
      nsCreated = true;
      ip("-n", NS, "tuntap", "add", TAP, "mode", "tap");
      for (const l of ["lo", TAP]) ip("-n", NS, "link", "set", l, "up");
      // The switch port's side: an lldpd on the tap, reached through its own control socket.
      const sock = join(dir, "lldpd.sock");
      writeFileSync(join(dir, "no-lldpd.conf"), "");
      await procs.start(NS, "lldpd", ["lldpd", "-d", "-I", TAP, "-u", sock, "-O", join(dir, "no-lldpd.conf")]);
      await eventually("the host lldpd to open its control socket", () => existsSync(sock), scaled(15_000));

      const args = ["-m", "512", "-nographic", "-no-reboot", "-uuid", MACHINE, "-kernel", bootFiles.kernel, "-initrd", bootFiles.initrd, "-append", boot.cmdline];
      args.push("-drive", `file=${join(dir, "disk.raw")},if=virtio,format=raw`);
      // No option ROM: nothing boots from the network here.
      args.push("-netdev", `tap,id=n0,ifname=${TAP},script=no,downscript=no`, "-device", `e1000,netdev=n0,mac=${MAC},romfile=`);
      const started = Date.now();
      const vm: ChildProcess = spawn("ip", ["netns", "exec", NS, "qemu-system-x86_64", ...args], { stdio: ["ignore", "pipe", "pipe"] });
      procs.children.push(vm);
      vm.stdout!.on("data", (c: Buffer) => void (vmConsole += c.toString()));
      vm.stderr!.on("data", (c: Buffer) => void (vmConsole += c.toString()));
      vm.once("exit", (code, signal) => void (vmConsole += `\n[qemu exited: ${code ?? signal}]\n`));

      await eventually(
        "the installed OS to come up",
        () => {
          if (vm.exitCode !== null || vm.signalCode !== null) throw new Error("QEMU exited");
          return vmConsole.includes(`${UP_LINE} ${MACHINE}`);
        },
        scaled(240_000),
      ).catch((err: Error) => {
        throw new Error(`${err.message}${diagnosis()}`);
      });
      console.log(`test-os: QEMU start to "${UP_LINE}" took ${((Date.now() - started) / 1000).toFixed(1)} s`);
      console.log(
        vmConsole
          .split("\n")
          .filter((l) => l.includes("metal-test-os"))
          .map((l) => `test-os: console: ${l.trimEnd()}`)
          .join("\n"),
      );
      expect(vmConsole, diagnosis()).toContain("metal-test-os initrd: root /dev/vda1");

      const neighbor = await eventually(
        "the switch port's lldpd to see the machine",
        () => neighborsOf(runIn(NS, ["lldpcli", "-u", sock, "-f", "json", "show", "neighbors"])).find((n) => n.name === MACHINE),
        scaled(90_000),
      ).catch((err: Error) => {
        throw new Error(`${err.message}${diagnosis()}`);
      });
      console.log(`test-os: QEMU start to the LLDP neighbour took ${((Date.now() - started) / 1000).toFixed(1)} s`);
      expect(neighbor.descr, diagnosis()).toContain(PHONED_HOME_MARK);
      expect(neighbor.descr, diagnosis()).toContain(HOSTNAME);
      // PID 1 went on after the start-up: the VM still runs.
      expect(vm.exitCode, diagnosis()).toBeNull();
    },
    scaled(420_000),
  );
});
