import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planStorage } from "../../../edge/hammer/layout.js";
import { BOOT_INFO_PATH, INSTALL_CONFIG_PATH, INSTALL_STEP } from "../../../edge/hammer/linux/install.js";
import { LinuxHardware } from "../../../edge/hammer/linux/linux-hardware.js";
import { BASE_ENV, spawnRunner } from "../../../edge/hammer/linux/runner.js";
import { FilesystemLayoutSchema, Format, GptType } from "../../../gen/metal/api/v1/filesystem_layout_pb.js";
import { scaled } from "../../helpers/timeouts.js";

/**
 * The Linux adapter on a real (file-backed loop) disk: wipe, partition,
 * format, mount, unpack an lz4 (or zstd) image, run its install step in a
 * chroot. Needs root, loop devices, and the tools of Debian's gdisk,
 * dosfstools, e2fsprogs, util-linux, tar and lz4 or zstd packages; skips
 * with the reason otherwise.
 */
const TOOLS = ["losetup", "lsblk", "blkid", "wipefs", "blockdev", "partx", "sgdisk", "mkfs.ext4", "mount", "umount", "tar", "chroot", "ldd"];
const onPath = (t: string) => BASE_ENV.PATH!.split(":").some((d) => existsSync(join(d, t)));
const compressor = ["lz4", "zstd"].find(onPath);
const kernelFilesystems = existsSync("/proc/filesystems") ? readFileSync("/proc/filesystems", "utf8") : "";
/** A kernel built without vfat (a sandbox's) still tests the mount below the root, with ext4 in the ESP's place. */
const espFormat = /\svfat$/m.test(kernelFilesystems) ? "vfat" : "ext4";

function skipReason(): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "needs root (loop devices, mount, chroot)";
  const missing = [...TOOLS, ...(espFormat === "vfat" ? ["mkfs.vfat"] : [])].filter((t) => !onPath(t));
  if (missing.length > 0) return `missing tools: ${missing.join(", ")} (Debian: gdisk, dosfstools, e2fsprogs, util-linux, mount, tar, libc-bin)`;
  if (!compressor) return "neither lz4 nor zstd is installed";
  if (!/\sext4$/m.test(kernelFilesystems)) return "the kernel cannot mount ext4";
  // Finding a free loop device is not enough (a container may see /dev/loop* and still not attach one): attach one.
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
if (reason) console.warn(`skipping the loop-device tests: ${reason}`);

describe.skipIf(reason !== undefined)("the Linux adapter on a loop device", () => {
  let dir: string;
  let loop = "";
  let hw: LinuxHardware;
  const run = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "linux-loop-"));
    const disk = join(dir, "disk.img");
    writeFileSync(disk, "");
    run("truncate", "-s", "64M", disk);
    loop = run("losetup", "--find", "--show", "--partscan", disk).trim();
    hw = new LinuxHardware({ runner: spawnRunner(), targetDir: join(dir, "root"), scratchDir: join(dir, "scratch"), deviceWaitMs: scaled(30_000) });
  });

  afterAll(async () => {
    // Whatever a failed test left mounted goes first, then the loop device, then the files.
    await hw?.unmount().catch(() => {});
    const mounted = (at: string) => readFileSync("/proc/self/mountinfo", "utf8").includes(` ${at} `);
    for (const sub of ["root/sys", "root/proc", "root/dev", "check"]) {
      const at = join(dir ?? "", sub);
      if (dir && mounted(at)) execFileSync("umount", ["--recursive", "--lazy", at], { stdio: "ignore" });
    }
    if (loop) execFileSync("losetup", ["-d", loop], { stdio: "ignore" });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Writes `text` at `offset` bytes into the disk; reads back what is there. */
  const poke = (offset: number, text: string) => execFileSync("dd", [`of=${loop}`, "bs=1", `seek=${offset}`, "conv=notrunc,fsync", "status=none"], { input: text });
  const peek = (offset: number, length: number) => execFileSync("dd", [`if=${loop}`, "bs=1", `skip=${offset}`, `count=${length}`, "status=none"]).toString("latin1");

  it(
    "partitions without partprobe, and wipes the whole disk by discard, or both ends of it where discard is not available",
    async () => {
      const real = spawnRunner();
      // A discovery image with util-linux only: partx tells the kernel, dd zeroes.
      const bare = new LinuxHardware({ runner: { run: (argv, opts) => real.run(argv, opts), has: (c) => !["partprobe", "blkdiscard"].includes(c) && real.has(c) }, targetDir: join(dir, "root") });
      await bare.partitionDisk({ device: loop, partitions: [{ number: 1, device: `${loop}p1`, label: "old", gptType: "linux", startMib: 1, endMib: 33 }] });
      expect(readFileSync("/proc/partitions", "utf8")).toMatch(new RegExp(`\\s${loop.slice(5)}p1\\n`));
      // A previous tenant's filesystem on it, and data all over the disk.
      run("mkfs.ext4", "-q", "-F", `${loop}p1`);
      const size = Number(run("blockdev", "--getsize64", loop).trim());
      const spots = [0, 40 * 2 ** 20, size - 4096];
      for (const at of spots) poke(at, "TENANT");

      await hw.wipeDisk(loop);
      // Discard on a loop device punches holes: the middle of the disk reads zeros as well.
      for (const at of spots) expect(peek(at, 6)).toBe("\0".repeat(6));
      expect(run("wipefs", loop).trim()).toBe("");

      // Without blkdiscard the first and last 16 MiB are zeroed, which covers every header and both GPT copies.
      for (const at of spots) poke(at, "TENANT");
      await bare.wipeDisk(loop);
      expect(peek(0, 6)).toBe("\0".repeat(6));
      expect(peek(size - 4096, 6)).toBe("\0".repeat(6));
      expect(peek(40 * 2 ** 20, 6)).toBe("TENANT");
    },
    scaled(60_000),
  );

  it(
    "wipes, partitions, formats, unpacks an image onto the mounted filesystems and runs its install step",
    async () => {
      const size = BigInt(run("blockdev", "--getsize64", loop).trim());
      // Something of a previous tenant: a filesystem on the whole disk.
      run("mkfs.ext4", "-q", "-F", "-L", "tenant", loop);
      expect(run("wipefs", loop)).toContain("ext4");

      const layout = create(FilesystemLayoutSchema, {
        id: "loop",
        disks: [
          {
            device: loop,
            wipeOnReinstall: true,
            partitions: [
              { number: 1, sizeMib: 16n, gptType: GptType.BOOT, label: "efi" },
              { number: 2, sizeMib: 0n, gptType: GptType.LINUX, label: "root" },
            ],
          },
        ],
        filesystems: [
          { path: "/boot/efi", device: `${loop}p1`, format: espFormat === "vfat" ? Format.VFAT : Format.EXT4, label: "EFI" },
          { path: "/", device: `${loop}p2`, format: Format.EXT4, label: "root", createOptions: ["-m", "0"] },
          { path: "/tmp", device: "tmpfs", format: Format.TMPFS },
        ],
      });
      const plan = planStorage(layout, { disks: [{ name: loop, sizeBytes: size }] }, [loop]);

      await hw.wipeDisk(loop);
      expect(run("wipefs", loop).trim()).toBe("");
      for (const d of plan.disks) await hw.partitionDisk(d);
      // Read from the table itself (lsblk's labels come from udev, which a sandbox may not run).
      const entry = (dev: string) => {
        const fields = Object.fromEntries(
          run("blkid", "-p", "-o", "export", dev)
            .trim()
            .split("\n")
            .map((l) => l.split("=", 2) as [string, string]),
        );
        return { name: fields.PART_ENTRY_NAME, type: fields.PART_ENTRY_TYPE, offset: Number(fields.PART_ENTRY_OFFSET) * 512, size: Number(fields.PART_ENTRY_SIZE) * 512 };
      };
      expect([entry(`${loop}p1`), entry(`${loop}p2`)]).toEqual([
        { name: "efi", type: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", offset: 1 * 2 ** 20, size: 16 * 2 ** 20 },
        { name: "root", type: "0fc63daf-8483-4772-8e79-3d69d8477de4", offset: 17 * 2 ** 20, size: 46 * 2 ** 20 },
      ]);
      for (const f of plan.format) await hw.format(f);
      expect(run("blkid", "-o", "value", "-s", "TYPE", `${loop}p1`).trim()).toBe(espFormat);
      expect(run("blkid", "-o", "value", "-s", "LABEL", `${loop}p1`).trim()).toBe("EFI");
      expect(run("blkid", "-o", "value", "-s", "TYPE", `${loop}p2`).trim()).toBe("ext4");

      // The image: a root with an ESP file, a kernel, and an install step that is a shell script run by a copied /bin/sh.
      const tree = join(dir, "tree");
      mkdirSync(join(tree, "boot/efi/EFI/test"), { recursive: true });
      mkdirSync(join(tree, "etc"), { recursive: true });
      writeFileSync(join(tree, "etc/os-release"), "ID=looptest\n");
      writeFileSync(join(tree, "boot/vmlinuz-test"), "not really a kernel\n");
      writeFileSync(join(tree, "boot/efi/EFI/test/grubx64.efi"), "esp file\n");
      copyWithLibraries("/bin/sh", tree);
      mkdirSync(join(tree, dirname(INSTALL_STEP)), { recursive: true });
      writeFileSync(
        join(tree, INSTALL_STEP),
        [
          "#!/bin/sh",
          "set -e",
          // The hammer's promises to the step: its config, /proc and /dev of the running system.
          '[ -s "$METAL_INSTALL_CONFIG" ] && [ -e /proc/self/status ] && [ -c /dev/null ] && [ -d /sys/class ]',
          `printf '{"kernel":"/boot/vmlinuz-test","initrd":"","cmdline":"root=%s console=ttyS0","bootloaderId":"looptest"}' ${loop}p2 > "$METAL_BOOT_INFO"`,
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      const image = join(hw.scratchDir(), "image.tar");
      run("tar", "--create", "--file", image, "--directory", tree, ".");
      run(compressor!, ...(compressor === "lz4" ? ["-q", "--rm", image, `${image}.lz4`] : ["-q", "--rm", image, "-o", `${image}.zst`]));
      const compressed = compressor === "lz4" ? `${image}.lz4` : `${image}.zst`;

      await hw.unpackImage(compressed, plan.filesystems);
      const root = join(dir, "root");
      expect(readFileSync(join(root, "etc/os-release"), "utf8")).toBe("ID=looptest\n");
      expect(readFileSync(join(root, "etc/fstab"), "utf8")).toContain(`${loop}p1 /boot/efi ${espFormat} defaults 0 2`);
      // The ESP's file landed on the vfat partition, not on the root below it.
      const mounts = readFileSync("/proc/self/mountinfo", "utf8");
      const esp = mounts.split("\n").find((l) => l.includes(` ${join(root, "boot/efi")} `));
      expect(esp).toContain(` - ${espFormat} ${loop}p1 `);

      const boot = await hw.runInstallStep({
        machineUuid: "0e1d2c3b-0000-4000-8000-000000000001",
        hostname: "loop-1",
        sshPublicKeys: [],
        userData: "",
        consolePassword: "pw",
        networks: [],
        dnsServers: [],
        ntpServers: [],
        role: "machine",
        rootDevice: `${loop}p2`,
      });
      expect(boot).toEqual({ kernel: "/boot/vmlinuz-test", initrd: "", cmdline: `root=${loop}p2 console=ttyS0`, bootloaderId: "looptest" });
      expect(JSON.parse(readFileSync(join(root, INSTALL_CONFIG_PATH), "utf8")).hostname).toBe("loop-1");
      expect(existsSync(join(root, BOOT_INFO_PATH))).toBe(true);
      // /dev, /proc and /sys are let go again, and the running system's own stay mounted.
      const after = readFileSync("/proc/self/mountinfo", "utf8");
      for (const api of ["dev", "proc", "sys"]) expect(after).not.toContain(` ${join(root, api)} `);
      expect(after).toMatch(/ \/dev\/pts /);

      await hw.unmount();
      expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(` ${root} `);
      // What was unpacked is on the disk: mounted again read-only, the ESP file is on partition 1.
      const check = join(dir, "check");
      mkdirSync(check);
      run("mount", "-o", "ro", `${loop}p1`, check);
      try {
        expect(readFileSync(join(check, "EFI/test/grubx64.efi"), "utf8")).toBe("esp file\n");
      } finally {
        run("umount", check);
      }
    },
    scaled(120_000),
  );
});

/** Copies an executable and the shared libraries ldd names into `root`, at the same paths. */
function copyWithLibraries(binary: string, root: string) {
  const files = [binary, ...[...execFileSync("ldd", [binary], { encoding: "utf8" }).matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!)];
  for (const f of files) {
    mkdirSync(join(root, dirname(f)), { recursive: true });
    copyFileSync(f, join(root, f));
  }
  execFileSync("chmod", ["755", join(root, binary)]);
}
