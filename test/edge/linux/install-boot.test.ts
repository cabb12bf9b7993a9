import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InstallConfig, PlannedFilesystem } from "../../../edge/hammer/hardware.js";
import { compressionOf, tarArgv } from "../../../edge/hammer/linux/image.js";
import { BOOT_INFO_PATH, INSTALL_CONFIG_PATH, INSTALL_STEP, parseBootInfo, runInstallStep } from "../../../edge/hammer/linux/install.js";
import { kexecLoadArgv, rootLookup } from "../../../edge/hammer/linux/kexec.js";
import { LinuxHardware } from "../../../edge/hammer/linux/linux-hardware.js";
import { platformHardware } from "../../../edge/hammer/platform.js";
import { FakeRunner } from "./fake-runner.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "linux-install-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const config: InstallConfig = {
  machineUuid: "0e1d2c3b-0000-4000-8000-000000000001",
  hostname: "web-1",
  sshPublicKeys: ["ssh-ed25519 AAAA test"],
  userData: "",
  consolePassword: "s3cretPassw0rdXY",
  networks: [{ network: "internet", ips: ["203.0.113.7"], vrf: 104009, primary: true }],
  dnsServers: ["192.0.2.53"],
  ntpServers: [],
  role: "machine",
  rootDevice: "/dev/sda2",
};
const bootJson = { kernel: "/boot/vmlinuz-6.1.0-18-amd64", initrd: "/boot/initrd.img-6.1.0-18-amd64", cmdline: "console=ttyS0 root=/dev/sda2", bootloader_id: "debian" };

/** A root with the image's install step; the fake runner's chroot plays the step and writes the boot info. */
async function imageRoot(name: string, step = true): Promise<string> {
  const root = join(dir, name);
  await mkdir(join(root, "usr/local/bin"), { recursive: true });
  if (step) await writeFile(join(root, INSTALL_STEP), "#!/bin/sh\n", { mode: 0o755 });
  return root;
}

function installRunner(root: string, writeBootInfo = true): FakeRunner {
  return new FakeRunner().on("chroot", async () => {
    if (writeBootInfo) await writeFile(join(root, BOOT_INFO_PATH), JSON.stringify(bootJson));
    return {};
  });
}

describe("the image", () => {
  it("is told lz4, zstd, gzip or plain tar by its first bytes, and unpacked keeping owners by number and attributes", () => {
    expect(compressionOf(Uint8Array.from([0x04, 0x22, 0x4d, 0x18, 0x64]))).toBe("lz4");
    expect(compressionOf(Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe("zstd");
    expect(compressionOf(Uint8Array.from([0x1f, 0x8b, 0x08, 0x00]))).toBe("gzip");
    expect(compressionOf(new TextEncoder().encode("./etc/"))).toBe("none");
    expect(compressionOf(new Uint8Array())).toBe("none");
    expect(tarArgv("/run/metal/scratch/image", "/run/metal/root", "lz4")).toEqual([
      "tar",
      "--extract",
      "--use-compress-program=lz4",
      "--file",
      "/run/metal/scratch/image",
      "--directory",
      "/run/metal/root",
      "--numeric-owner",
      "--preserve-permissions",
      "--xattrs",
      "--xattrs-include=*",
    ]);
    expect(tarArgv("f", "t", "zstd")).toContain("--zstd");
  });
});

describe("the install step", () => {
  it("gets the config (0600), runs in a chroot with /dev, /proc and /sys, and reports the boot info it wrote", async () => {
    const root = await imageRoot("ok");
    const runner = installRunner(root);
    const boot = await runInstallStep(runner, root, config);
    expect(boot).toEqual({ kernel: bootJson.kernel, initrd: bootJson.initrd, cmdline: bootJson.cmdline, bootloaderId: "debian" });
    const written = join(root, INSTALL_CONFIG_PATH);
    expect(JSON.parse(await readFile(written, "utf8"))).toEqual(config);
    expect((await stat(written)).mode & 0o777).toBe(0o600);
    expect(runner.commands).toEqual([
      `mount --rbind /dev ${root}/dev`,
      `mount --make-rslave ${root}/dev`,
      `mount -t proc proc ${root}/proc`,
      `mount --rbind /sys ${root}/sys`,
      `mount --make-rslave ${root}/sys`,
      `chroot ${root} ${INSTALL_STEP}`,
      `umount --recursive --lazy ${root}/sys`,
      `umount --recursive --lazy ${root}/proc`,
      `umount --recursive --lazy ${root}/dev`,
    ]);
    const chroot = runner.calls.find((c) => c.argv[0] === "chroot")!;
    // The console password travels in the config file, never in argv or the environment.
    expect(JSON.stringify(chroot)).not.toContain(config.consolePassword);
    expect(chroot.opts.env).toMatchObject({ METAL_INSTALL_CONFIG: INSTALL_CONFIG_PATH, METAL_BOOT_INFO: BOOT_INFO_PATH });
    expect(chroot.opts.timeoutMs).toBeGreaterThanOrEqual(10 * 60_000);
  });

  it("unmounts after a failing step and passes its error on", async () => {
    const root = await imageRoot("fails");
    const runner = new FakeRunner().on("chroot", { code: 1, stderr: "grub-install: error: cannot find EFI directory." });
    await expect(runInstallStep(runner, root, config)).rejects.toThrow(/chroot .* exited with 1: grub-install: error: cannot find EFI directory\./);
    expect(runner.commands.slice(-3)).toEqual([`umount --recursive --lazy ${root}/sys`, `umount --recursive --lazy ${root}/proc`, `umount --recursive --lazy ${root}/dev`]);
  });

  it("refuses an image without a step, a step that reports nothing, and boot info that could not boot", async () => {
    await expect(runInstallStep(new FakeRunner(), await imageRoot("nostep", false), config)).rejects.toThrow(`the image has no install step at ${INSTALL_STEP}`);
    const silent = await imageRoot("silent");
    await expect(runInstallStep(installRunner(silent, false), silent, config)).rejects.toThrow(`the install step wrote no ${BOOT_INFO_PATH}`);
    expect(() => parseBootInfo("kernel: /boot/vmlinuz")).toThrow(/not JSON/);
    expect(() => parseBootInfo(JSON.stringify({ kernel: "vmlinuz" }))).toThrow(/kernel "vmlinuz" is not an absolute path/);
    expect(() => parseBootInfo(JSON.stringify({ kernel: "/boot/../../vmlinuz" }))).toThrow(/not an absolute path inside/);
    expect(parseBootInfo(JSON.stringify({ kernel: "/vmlinuz", bootloaderId: "x" }))).toEqual({ kernel: "/vmlinuz", initrd: "", cmdline: "", bootloaderId: "x" });
  });
});

describe("kexec", () => {
  it("loads kernel and initrd from the mounted installation with the command line as one argument", () => {
    expect(kexecLoadArgv("/run/metal/root", { kernel: "/boot/vmlinuz", initrd: "/boot/initrd.img", cmdline: "console=ttyS0,115200n8 root=UUID=abc ro", bootloaderId: "" })).toEqual([
      "kexec",
      "--load",
      "/run/metal/root/boot/vmlinuz",
      "--initrd=/run/metal/root/boot/initrd.img",
      "--command-line=console=ttyS0,115200n8 root=UUID=abc ro",
    ]);
    expect(kexecLoadArgv("/r", { kernel: "/vmlinuz", initrd: "", cmdline: "", bootloaderId: "" })).toEqual(["kexec", "--load", "/r/vmlinuz", "--command-line="]);
  });

  it("finds the previous OS's root by its root= parameter", () => {
    expect(rootLookup("quiet root=/dev/sda2 ro")).toEqual({ device: "/dev/sda2" });
    expect(rootLookup("root=UUID=2f5c0e3a-1b7d-4d4e-9d59-4c3b2a1f0e9d")).toEqual({ argv: ["blkid", "--uuid", "2f5c0e3a-1b7d-4d4e-9d59-4c3b2a1f0e9d"] });
    expect(rootLookup("root=LABEL=root")).toEqual({ argv: ["blkid", "--label", "root"] });
    expect(rootLookup("root=PARTUUID=0a1b-02")).toEqual({ argv: ["blkid", "--list-one", "--output", "device", "--match-token", "PARTUUID=0a1b-02"] });
    expect(rootLookup("console=ttyS0")).toBeUndefined();
  });
});

describe("the Linux adapter", () => {
  const filesystems: PlannedFilesystem[] = [
    { device: "/dev/sda2", path: "/", format: "ext4", label: "root", mountOptions: [], createOptions: [] },
    { device: "/dev/sda1", path: "/boot/efi", format: "vfat", label: "efi", mountOptions: [], createOptions: [] },
  ];

  it("unpacks onto the mounted filesystems, installs, and kexecs after unmounting", async () => {
    const target = join(dir, "target");
    const image = join(dir, "image.tar.zst");
    await writeFile(image, Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0]));
    const runner = installRunner(target).on("tar", async () => {
      // The "unpacked image" brings its install step.
      await mkdir(join(target, "usr/local/bin"), { recursive: true });
      await writeFile(join(target, INSTALL_STEP), "");
      return {};
    });
    const hw = new LinuxHardware({ runner, targetDir: target, scratchDir: join(dir, "scratch") });
    await hw.unpackImage(image, filesystems);
    expect(await readFile(join(target, "etc/fstab"), "utf8")).toContain("/dev/sda1 /boot/efi vfat defaults 0 2");
    const boot = await hw.runInstallStep(config);
    await hw.kexec(boot);
    const cmds = runner.commands;
    expect(cmds.slice(0, 3)).toEqual([
      `mount /dev/sda2 ${target}`,
      `mount /dev/sda1 ${target}/boot/efi`,
      `tar --extract --zstd --file ${image} --directory ${target} --numeric-owner --preserve-permissions --xattrs --xattrs-include=*`,
    ]);
    expect(cmds.slice(-5)).toEqual([
      `kexec --load ${target}/boot/vmlinuz-6.1.0-18-amd64 --initrd=${target}/boot/initrd.img-6.1.0-18-amd64 --command-line=console=ttyS0 root=/dev/sda2`,
      `umount ${target}/boot/efi`,
      `umount ${target}`,
      "sync",
      "kexec --exec",
    ]);
    expect(hw.scratchDir()).toBe(join(dir, "scratch"));
    expect((await stat(hw.scratchDir())).isDirectory()).toBe(true);
  });

  it("boots the previous OS after a failed reinstall by mounting its root read-only", async () => {
    const target = join(dir, "previous");
    const runner = new FakeRunner().on("blkid --uuid", { stdout: "/dev/sda2\n" });
    const hw = new LinuxHardware({ runner, targetDir: target });
    await hw.kexec({ kernel: "/boot/vmlinuz", initrd: "/boot/initrd.img", cmdline: "root=UUID=2f5c0e3a ro", bootloaderId: "debian" });
    expect(runner.commands).toEqual([
      "blkid --uuid 2f5c0e3a",
      `mount -o ro /dev/sda2 ${target}`,
      `kexec --load ${target}/boot/vmlinuz --initrd=${target}/boot/initrd.img --command-line=root=UUID=2f5c0e3a ro`,
      `umount ${target}`,
      "sync",
      "kexec --exec",
    ]);
    await expect(new LinuxHardware({ runner: new FakeRunner(), targetDir: target }).kexec({ kernel: "/vmlinuz", initrd: "", cmdline: "quiet", bootloaderId: "" })).rejects.toThrow(/names no root= device/);
  });

  it("refuses the install step when nothing is unpacked, and reboots by sysrq only if reboot fails", async () => {
    const runner = new FakeRunner();
    const hw = new LinuxHardware({ runner, targetDir: join(dir, "none") });
    await expect(hw.runInstallStep(config)).rejects.toThrow(/no unpacked image/);
    await hw.reboot();
    expect(runner.commands).toEqual(["sync", "reboot -f"]);
  });

  it("mounts a tmpfs for the download when asked, once", async () => {
    const scratch = join(dir, "tmpfs-scratch");
    let mountinfo = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n";
    const runner = new FakeRunner().on("mount -t tmpfs", () => {
      mountinfo += `99 22 0:50 / ${scratch} rw - tmpfs tmpfs rw\n`;
      return {};
    });
    const files = { read: async (p: string) => (p === "/proc/self/mountinfo" ? mountinfo : undefined), exists: async () => false };
    const hw = new LinuxHardware({ runner, files, scratchDir: scratch, scratchTmpfsSize: "75%" });
    // The inventory fails (no /proc files here); the scratch tmpfs is mounted before it reads anything.
    await expect(hw.inventory()).rejects.toThrow();
    await expect(hw.inventory()).rejects.toThrow();
    expect(runner.commands.filter((c) => c.startsWith("mount"))).toEqual([`mount -t tmpfs -o size=75%,mode=0700 tmpfs ${scratch}`]);
  });
});

describe("platformHardware", () => {
  it("is the Linux adapter only in the discovery image or when asked for, never on another platform", () => {
    const discovery = () => "console=ttyS0 metal.machine=0e1d2c3b-0000-4000-8000-000000000001 metal.partition=p1";
    const laptop = () => "BOOT_IMAGE=/vmlinuz root=UUID=abc ro quiet";
    expect(platformHardware("linux", {}, discovery)).toBeInstanceOf(LinuxHardware);
    expect(platformHardware("linux", {}, laptop)).toBeUndefined();
    expect(platformHardware("linux", { METAL_HAMMER_LINUX: "1" }, laptop)).toBeInstanceOf(LinuxHardware);
    expect(platformHardware("linux", { METAL_HAMMER_LINUX: "yes" }, laptop)).toBeUndefined();
    expect(platformHardware("darwin", { METAL_HAMMER_LINUX: "1" }, discovery)).toBeUndefined();
    // This machine is no discovery image: the default reads the real /proc/cmdline.
    if (process.env.METAL_HAMMER_LINUX !== "1") expect(platformHardware()).toBeUndefined();
  });
});
