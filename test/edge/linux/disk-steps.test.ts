import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PlannedFilesystem } from "../../../edge/hammer/hardware.js";
import { createLogicalVolume, createRaid, createVolumeGroup, type DiskDeps, format, holdersOf, partitionDisk, wipeDisk } from "../../../edge/hammer/linux/disks.js";
import { fstab, mountAll, mountOrder, underTarget } from "../../../edge/hammer/linux/mounts.js";
import { FakeRunner } from "./fake-runner.js";

function deps(runner: FakeRunner): DiskDeps & { waited: string[] } {
  const waited: string[] = [];
  return { runner, waitForDevice: async (d) => void waited.push(d), waited };
}

const fs = (f: Partial<PlannedFilesystem> & Pick<PlannedFilesystem, "device" | "format">): PlannedFilesystem => ({ path: "", label: "", mountOptions: [], createOptions: [], ...f });

describe("wiping a disk", () => {
  // An earlier installation: a mirror on sda2 carrying a volume group, partition 3 a physical volume of its own.
  const tree = {
    name: "/dev/sda",
    type: "disk",
    children: [
      { name: "/dev/sda1", type: "part" },
      { name: "/dev/sda2", type: "part", children: [{ name: "/dev/md127", type: "raid1", children: [{ name: "/dev/mapper/vg0-root", type: "lvm" }] }] },
      { name: "/dev/sda3", type: "part", children: [{ name: "/dev/mapper/data-x", type: "lvm" }] },
    ],
  };

  it("stops the arrays and volume groups on the disk, wipes the partitions' and the disk's signatures, discards, zaps both GPTs", async () => {
    const runner = new FakeRunner()
      .install("blkdiscard", "udevadm")
      .on("lsblk", { stdout: JSON.stringify({ blockdevices: [tree] }) })
      .on("pvs", { stdout: "  vg0 \n  data\n" });
    await wipeDisk(deps(runner), "/dev/sda");
    expect(runner.commands).toEqual([
      "lsblk -J -p -o NAME,TYPE /dev/sda",
      "pvs --noheadings -o vg_name /dev/md127 /dev/sda3",
      "vgchange --activate n vg0",
      "vgchange --activate n data",
      "mdadm --stop /dev/md127",
      "wipefs -a /dev/sda1",
      "wipefs -a /dev/sda2",
      "wipefs -a /dev/sda3",
      "wipefs -a /dev/sda",
      "blkdiscard /dev/sda",
      "sgdisk --zap-all /dev/sda",
      "udevadm settle --timeout=60",
    ]);
  });

  it("stops an array built on another array before that one", () => {
    const nested = { name: "/dev/sdb", type: "disk", children: [{ name: "/dev/sdb1", type: "part", children: [{ name: "/dev/md0", type: "raid1", children: [{ name: "/dev/md1", type: "raid0" }] }] }] };
    expect(holdersOf(nested)).toEqual({ arrays: ["/dev/md1", "/dev/md0"], physicalVolumes: [] });
    expect(holdersOf({ name: "/dev/sdc", type: "disk" })).toEqual({ arrays: [], physicalVolumes: [] });
  });

  it("zeroes the first and last 16 MiB where discard fails", async () => {
    const runner = new FakeRunner()
      .install("blkdiscard")
      .on("lsblk", { stdout: JSON.stringify({ blockdevices: [{ name: "/dev/vda", type: "disk" }] }) })
      .on("blkdiscard", { code: 1, stderr: "blkdiscard: /dev/vda: BLKDISCARD ioctl failed: Operation not supported" })
      .on("blockdev --getsize64", { stdout: "21474836480\n" });
    await wipeDisk(deps(runner), "/dev/vda");
    expect(runner.commands.slice(2)).toEqual([
      "blkdiscard /dev/vda",
      "blockdev --getsize64 /dev/vda",
      "dd if=/dev/zero of=/dev/vda bs=1M count=16 seek=0 conv=fsync status=none",
      "dd if=/dev/zero of=/dev/vda bs=1M count=16 seek=20464 conv=fsync status=none",
      "sgdisk --zap-all /dev/vda",
    ]);
  });

  it("fails with the command's error when a step fails", async () => {
    const runner = new FakeRunner().on("wipefs -a /dev/sda", { code: 1, stderr: "wipefs: error: /dev/sda: probing initialization failed: Device or resource busy" });
    await expect(wipeDisk(deps(runner), "/dev/sda")).rejects.toThrow("wipefs -a /dev/sda exited with 1: wipefs: error: /dev/sda: probing initialization failed: Device or resource busy");
  });
});

describe("partitioning", () => {
  it("writes a new GPT with each partition from its start for its size, type code and name, then waits for the nodes", async () => {
    const runner = new FakeRunner().install("partprobe");
    const d = deps(runner);
    await partitionDisk(d, {
      device: "/dev/nvme0n1",
      partitions: [
        { number: 1, device: "/dev/nvme0n1p1", label: "efi", gptType: "boot", startMib: 1, endMib: 513 },
        { number: 2, device: "/dev/nvme0n1p2", label: "", gptType: "raid", startMib: 513, endMib: 10753 },
        { number: 3, device: "/dev/nvme0n1p3", label: "var lib", gptType: "lvm", startMib: 10753, endMib: 915714 },
      ],
    });
    expect(runner.calls[0]!.argv).toEqual([
      "sgdisk",
      "--clear",
      "--new=1:1M:+512M",
      "--typecode=1:ef00",
      "--change-name=1:efi",
      "--new=2:513M:+10240M",
      "--typecode=2:fd00",
      "--new=3:10753M:+904961M",
      "--typecode=3:8e00",
      // One argv element: the space stays in the name, nothing splits it.
      "--change-name=3:var lib",
      "/dev/nvme0n1",
    ]);
    expect(runner.commands.slice(1)).toEqual(["partprobe /dev/nvme0n1"]);
    expect(d.waited).toEqual(["/dev/nvme0n1p1", "/dev/nvme0n1p2", "/dev/nvme0n1p3"]);
  });

  it("tells the kernel with partx where partprobe is missing", async () => {
    const runner = new FakeRunner();
    await partitionDisk(deps(runner), { device: "/dev/sda", partitions: [{ number: 1, device: "/dev/sda1", label: "root", gptType: "linux", startMib: 1, endMib: 100 }] });
    expect(runner.commands).toEqual(["sgdisk --clear --new=1:1M:+99M --typecode=1:8300 --change-name=1:root /dev/sda", "partx --update /dev/sda"]);
  });
});

describe("RAID and LVM", () => {
  it("creates a mirror with metadata 1.0 (firmware reads a mirrored EFI partition), spares counted apart", async () => {
    const runner = new FakeRunner();
    const d = deps(runner);
    await createRaid(d, { device: "/dev/md/boot", level: 1, devices: ["/dev/sda1", "/dev/sdb1", "/dev/sdc1"], spares: 1, createOptions: [] });
    expect(runner.commands).toEqual(["mdadm --create /dev/md/boot --run --level=1 --raid-devices=2 --spare-devices=1 --metadata=1.0 /dev/sda1 /dev/sdb1 /dev/sdc1"]);
    expect(d.waited).toEqual(["/dev/md/boot"]);
  });

  it("keeps the layout's metadata choice and creates a stripe as told", async () => {
    const runner = new FakeRunner();
    await createRaid(deps(runner), { device: "/dev/md/root", level: 1, devices: ["/dev/sda2", "/dev/sdb2"], spares: 0, createOptions: ["--metadata=1.2", "--bitmap=internal"] });
    await createRaid(deps(runner), { device: "/dev/md/data", level: 0, devices: ["/dev/sda3", "/dev/sdb3"], spares: 0, createOptions: [] });
    expect(runner.commands).toEqual([
      "mdadm --create /dev/md/root --run --level=1 --raid-devices=2 --metadata=1.2 --bitmap=internal /dev/sda2 /dev/sdb2",
      "mdadm --create /dev/md/data --run --level=0 --raid-devices=2 /dev/sda3 /dev/sdb3",
    ]);
    await expect(createRaid(deps(runner), { device: "/dev/md/x", level: 1, devices: ["/dev/sda4"], spares: 1, createOptions: [] })).rejects.toThrow(/no active member/);
  });

  it("creates physical volumes, the group, and volumes by size, by the rest, striped and mirrored", async () => {
    const runner = new FakeRunner();
    const d = deps(runner);
    await createVolumeGroup(d, "vgroot", ["/dev/sda3", "/dev/sdb3"]);
    await createLogicalVolume(d, { volumeGroup: "vgroot", name: "var", device: "/dev/vgroot/var", sizeMib: 20480, type: "linear" }, 2);
    await createLogicalVolume(d, { volumeGroup: "vgroot", name: "fast", device: "/dev/vgroot/fast", sizeMib: 1024, type: "striped" }, 2);
    await createLogicalVolume(d, { volumeGroup: "vgroot", name: "safe", device: "/dev/vgroot/safe", sizeMib: 1024, type: "raid1" }, 2);
    await createLogicalVolume(d, { volumeGroup: "vgroot", name: "data", device: "/dev/vgroot/data", sizeMib: 0, type: "linear" }, 2);
    expect(runner.commands).toEqual([
      "pvcreate --yes /dev/sda3 /dev/sdb3",
      "vgcreate --yes vgroot /dev/sda3 /dev/sdb3",
      "lvcreate --yes --wipesignatures y --name var --size 20480m vgroot",
      "lvcreate --yes --wipesignatures y --name fast --size 1024m --type striped --stripes 2 vgroot",
      "lvcreate --yes --wipesignatures y --name safe --size 1024m --type raid1 --mirrors 1 vgroot",
      "lvcreate --yes --wipesignatures y --name data --extents 100%FREE vgroot",
    ]);
    expect(d.waited).toEqual(["/dev/vgroot/var", "/dev/vgroot/fast", "/dev/vgroot/safe", "/dev/vgroot/data"]);
  });
});

describe("formatting", () => {
  it("runs the right mkfs with label and create options; tmpfs and none touch no disk", async () => {
    const runner = new FakeRunner();
    const d = deps(runner);
    await format(d, fs({ device: "/dev/sda1", format: "vfat", label: "EFI", createOptions: ["-F", "32"] }));
    await format(d, fs({ device: "/dev/sda2", format: "ext4", label: "root", createOptions: ["-E", "lazy_itable_init=1"] }));
    await format(d, fs({ device: "/dev/sda3", format: "ext3" }));
    await format(d, fs({ device: "/dev/sda4", format: "swap", label: "swap" }));
    await format(d, fs({ device: "tmpfs", format: "tmpfs", path: "/tmp" }));
    await format(d, fs({ device: "/dev/sda5", format: "none" }));
    expect(runner.commands).toEqual(["mkfs.vfat -n EFI -F 32 /dev/sda1", "mkfs.ext4 -F -q -L root -E lazy_itable_init=1 /dev/sda2", "mkfs.ext3 -F -q /dev/sda3", "mkswap -f -L swap /dev/sda4"]);
  });
});

describe("mounting the installation", () => {
  const layout = [
    fs({ device: "/dev/sda3", format: "ext4", path: "/var/lib" }),
    fs({ device: "/dev/sda1", format: "vfat", path: "/boot/efi", mountOptions: ["umask=0077"] }),
    fs({ device: "/dev/sda2", format: "ext4", path: "/", mountOptions: ["noatime", "errors=remount-ro"] }),
    fs({ device: "/dev/sda4", format: "ext4", path: "/var" }),
    fs({ device: "/dev/sda5", format: "swap" }),
    fs({ device: "tmpfs", format: "tmpfs", path: "/tmp", mountOptions: ["size=1G"] }),
  ];

  it("mounts the root first, then every filesystem after the one it lives on; swap and tmpfs not at all", () => {
    expect(mountOrder(layout).map((f) => f.path)).toEqual(["/", "/var", "/boot/efi", "/var/lib"]);
    expect(() => mountOrder([fs({ device: "/dev/sda3", format: "ext4", path: "/var" })])).toThrow(/no root/);
    expect(underTarget("/run/metal/root", "/var/lib")).toBe("/run/metal/root/var/lib");
    expect(() => underTarget("/run/metal/root", "/var/../../etc")).toThrow(/inside the installation/);
  });

  it("writes the layout's fstab", () => {
    expect(fstab([...layout, fs({ device: "/dev/sdb1", format: "ext4", path: "/srv/my data" })]).split("\n")).toEqual([
      "# written by metal-hammer from the machine's filesystem layout",
      "/dev/sda3 /var/lib ext4 defaults 0 2",
      "/dev/sda1 /boot/efi vfat umask=0077 0 2",
      "/dev/sda2 / ext4 noatime,errors=remount-ro 0 1",
      "/dev/sda4 /var ext4 defaults 0 2",
      "/dev/sda5 none swap sw 0 0",
      "tmpfs /tmp tmpfs size=1G 0 0",
      "/dev/sdb1 /srv/my\\040data ext4 defaults 0 2",
      "",
    ]);
  });
});

describe("the adapter's mount handling", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "linux-hw-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("unmounts what it mounted, children first, when a mount fails halfway", async () => {
    const runner = new FakeRunner().on("mount /dev/sda1", { code: 32, stderr: "mount: wrong fs type" });
    const target = join(dir, "root");
    await expect(
      mountAll(runner, target, [
        fs({ device: "/dev/sda2", format: "ext4", path: "/" }),
        fs({ device: "/dev/sda4", format: "ext4", path: "/var" }),
        fs({ device: "/dev/sda1", format: "vfat", path: "/var/lib" }),
      ]),
    ).rejects.toThrow(/mount \/dev\/sda1 .* exited with 32/);
    expect(runner.commands).toEqual([`mount /dev/sda2 ${target}`, `mount /dev/sda4 ${target}/var`, `mount /dev/sda1 ${target}/var/lib`, `umount ${target}/var`, `umount ${target}`]);
  });
});
