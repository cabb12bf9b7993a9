import { describe, expect, it } from "vitest";
import * as gen from "../../../gen/metal/api/v1/filesystem_layout_pb.js";
import { Format, GptType, type LayoutSpec, LvmType, layoutMatches, layoutProblems, layoutsOverlap, partitionDevice, RaidLevel, selectLayout } from "../../../server/domain/filesystem-layout.js";

/** Two disks, a RAID1 over their second partitions, LVM on top, root and var, swap, tmpfs and a whole-disk filesystem. */
const good = (): LayoutSpec => ({
  disks: [
    {
      device: "/dev/sda",
      partitions: [
        { number: 1, label: "efi", sizeMib: 512, gptType: GptType.BOOT },
        { number: 2, label: "swap", sizeMib: 4096, gptType: GptType.LINUX },
        { number: 3, label: "raid-a", sizeMib: 0, gptType: GptType.RAID },
      ],
      wipeOnReinstall: false,
    },
    { device: "/dev/nvme0n1", partitions: [{ number: 1, label: "raid-b", sizeMib: 0, gptType: GptType.RAID }], wipeOnReinstall: true },
    { device: "/dev/sdb", partitions: [], wipeOnReinstall: true },
    { device: "/dev/sdc", partitions: [], wipeOnReinstall: true },
    { device: "/dev/sdd", partitions: [], wipeOnReinstall: true },
  ],
  raid: [{ arrayName: "md0", devices: ["/dev/sda3", "/dev/nvme0n1p1"], level: RaidLevel.RAID1, createOptions: ["--metadata=1.2"], spares: 0 }],
  volumeGroups: [
    { name: "vg0", devices: ["/dev/md/md0"], tags: ["root"] },
    { name: "data", devices: ["/dev/sdb", "/dev/sdc"], tags: [] },
  ],
  logicalVolumes: [
    { name: "root", volumeGroup: "vg0", sizeMib: 20480, lvmType: LvmType.LINEAR },
    { name: "scratch", volumeGroup: "data", sizeMib: 0, lvmType: LvmType.STRIPED },
    { name: "var", volumeGroup: "vg0", sizeMib: 0, lvmType: LvmType.LINEAR },
  ],
  filesystems: [
    { path: "/boot/efi", device: "/dev/sda1", format: Format.VFAT, label: "efi", mountOptions: [], createOptions: ["-F", "32"] },
    { path: "", device: "/dev/sda2", format: Format.SWAP, label: "swap", mountOptions: [], createOptions: [] },
    { path: "/", device: "/dev/vg0/root", format: Format.EXT4, label: "root", mountOptions: ["noatime"], createOptions: [] },
    { path: "/var", device: "/dev/vg0/var", format: Format.EXT4, label: "var", mountOptions: [], createOptions: [] },
    { path: "/scratch", device: "/dev/data/scratch", format: Format.EXT4, label: "", mountOptions: [], createOptions: [] },
    { path: "/backup", device: "/dev/sdd", format: Format.EXT3, label: "backup", mountOptions: [], createOptions: [] },
    { path: "/tmp", device: "tmpfs", format: Format.TMPFS, label: "", mountOptions: ["size=1g"], createOptions: [] },
  ],
  constraints: { sizes: ["c1-large", "c1-xlarge"], images: { debian: ">= 12" } },
});

describe("filesystem layout rules", () => {
  it("accepts a complete layout", () => {
    expect(layoutProblems(good())).toEqual([]);
  });

  it("accepts partitions without labels", () => {
    const l = good();
    l.disks[0]!.partitions.forEach((p) => (p.label = ""));
    l.disks[1]!.partitions[0]!.label = "";
    expect(layoutProblems(l)).toEqual([]);
  });

  it("agrees with the proto enums", () => {
    expect(Format).toEqual({ VFAT: gen.Format.VFAT, EXT3: gen.Format.EXT3, EXT4: gen.Format.EXT4, SWAP: gen.Format.SWAP, TMPFS: gen.Format.TMPFS, NONE: gen.Format.NONE });
    expect(GptType).toEqual({ BOOT: gen.GptType.BOOT, LINUX: gen.GptType.LINUX, RAID: gen.GptType.RAID, LVM: gen.GptType.LVM });
    expect(RaidLevel).toEqual({ RAID0: gen.RaidLevel.RAID_LEVEL_0, RAID1: gen.RaidLevel.RAID_LEVEL_1 });
    expect(LvmType).toEqual({ LINEAR: gen.LvmType.LINEAR, STRIPED: gen.LvmType.STRIPED, RAID1: gen.LvmType.RAID1 });
  });

  it.each([
    ["/dev/sda", 3, "/dev/sda3"],
    ["/dev/vda", 1, "/dev/vda1"],
    ["/dev/nvme0n1", 3, "/dev/nvme0n1p3"],
    ["/dev/mmcblk0", 1, "/dev/mmcblk0p1"],
  ])("names partition %s + %i %s", (disk, n, dev) => {
    expect(partitionDevice(disk, n)).toBe(dev);
  });

  it.each<[string, (l: LayoutSpec) => void, string]>([
    // disks and partitions
    ["a disk that is no device path", (l) => (l.disks[2]!.device = "sdb"), 'disks[2].device: "sdb" must be a device path'],
    ["a disk twice", (l) => (l.disks[3]!.device = "/dev/sdb"), 'disks[3].device: "/dev/sdb" appears twice'],
    ["a rest-of-disk partition that is not last", (l) => (l.disks[0]!.partitions[1]!.sizeMib = 0), "disks[0].partitions[1].size_mib: only the last partition may take the rest of the disk (size 0)"],
    ["a partition number twice", (l) => (l.disks[0]!.partitions[1]!.number = 1), "disks[0].partitions[1].number: partition 1 appears twice"],
    ["partition number 0", (l) => (l.disks[0]!.partitions[0]!.number = 0), "disks[0].partitions[0].number: must be between 1 and 128"],
    ["a partition label twice across disks", (l) => (l.disks[1]!.partitions[0]!.label = "efi"), 'disks[1].partitions[0].label: "efi" is already the label of disks[0].partitions[0]'],
    ["a partition label with a space", (l) => (l.disks[0]!.partitions[0]!.label = "e f i"), "disks[0].partitions[0].label"],
    ["a missing gpt type", (l) => (l.disks[0]!.partitions[0]!.gptType = 0), "disks[0].partitions[0].gpt_type: must be set"],
    // raid
    ["raid over an unknown device", (l) => (l.raid[0]!.devices = ["/dev/sda3", "/dev/sdz9"]), 'raid[0].devices[1]: "/dev/sdz9" is not a partition or a disk of this layout'],
    ["raid over a partitioned disk", (l) => (l.raid[0]!.devices = ["/dev/sda3", "/dev/nvme0n1"]), 'raid[0].devices[1]: "/dev/nvme0n1" is a disk with partitions'],
    ["raid with one device", (l) => (l.raid[0]!.devices = ["/dev/sda3"]), "raid[0].devices: a RAID array needs more than one device"],
    ["raid with the same device twice", (l) => (l.raid[0]!.devices = ["/dev/sda3", "/dev/sda3"]), 'raid[0].devices[1]: "/dev/sda3" is already used by raid[0]'],
    ["raid without level", (l) => (l.raid[0]!.level = 0), "raid[0].level: must be set to 0 or 1"],
    ["raid with too many spares", (l) => (l.raid[0]!.spares = 1), "raid[0].spares: leaves 1 active device(s)"],
    ["raid with negative spares", (l) => (l.raid[0]!.spares = -1), "raid[0].spares: must not be negative"],
    ["raid with a bad name", (l) => (l.raid[0]!.arrayName = "md 0"), 'raid[0].array_name: "md 0"'],
    ["two arrays of one name", (l) => l.raid.push({ ...l.raid[0]!, devices: ["/dev/sdb", "/dev/sdc"] }), 'raid[1].array_name: "md0" appears twice'],
    ["whitespace in raid create options", (l) => (l.raid[0]!.createOptions = ["--metadata 1.2"]), 'raid[0].create_options[0]: "--metadata 1.2" must not contain whitespace'],
    // volume groups and logical volumes
    ["a volume group over an unknown device", (l) => (l.volumeGroups[0]!.devices = ["/dev/md/nope"]), 'volume_groups[0].devices[0]: "/dev/md/nope" is not a partition, a disk or a RAID array'],
    ["a volume group over a raid member", (l) => (l.volumeGroups[0]!.devices = ["/dev/sda3"]), 'volume_groups[0].devices[0]: "/dev/sda3" is already used by raid[0] (md0)'],
    ["a volume group without devices", (l) => (l.volumeGroups[0]!.devices = []), "volume_groups[0].devices: a volume group needs at least one device"],
    ["a volume group twice", (l) => (l.volumeGroups[1]!.name = "vg0"), 'volume_groups[1].name: "vg0" appears twice'],
    ["a tag with a space", (l) => (l.volumeGroups[0]!.tags = ["a b"]), "volume_groups[0].tags[0]"],
    ["a logical volume in an unknown group", (l) => (l.logicalVolumes[0]!.volumeGroup = "vg9"), 'logical_volumes[0].volume_group: "vg9" is not a volume group of this layout'],
    [
      "a striped volume on one device",
      (l) => (l.logicalVolumes[0]!.lvmType = LvmType.STRIPED),
      'logical_volumes[0].lvm_type: striped and raid1 volumes need a volume group of more than one device; "vg0" has 1',
    ],
    ["a raid1 volume on one device", (l) => (l.logicalVolumes[2]!.lvmType = LvmType.RAID1), "logical_volumes[2].lvm_type: striped and raid1"],
    ["a volume without type", (l) => (l.logicalVolumes[0]!.lvmType = 0), "logical_volumes[0].lvm_type: must be set"],
    ["a rest-of-group volume that is not last", (l) => (l.logicalVolumes[0]!.sizeMib = 0), "logical_volumes[0].size_mib: only the last volume of a volume group may take the rest (size 0)"],
    ["a volume twice in a group", (l) => (l.logicalVolumes[2]!.name = "root"), 'logical_volumes[2].name: "root" appears twice in volume group "vg0"'],
    // filesystems
    ["a filesystem on an unknown device", (l) => (l.filesystems[2]!.device = "/dev/vg0/nope"), 'filesystems[2].device: "/dev/vg0/nope" is not a partition, a disk, a RAID array or a logical volume'],
    ["a filesystem on a raid member", (l) => (l.filesystems[2]!.device = "/dev/nvme0n1p1"), 'filesystems[2].device: "/dev/nvme0n1p1" is already used by raid[0]'],
    ["two filesystems on one device", (l) => (l.filesystems[3]!.device = "/dev/vg0/root"), 'filesystems[3].device: "/dev/vg0/root" is already used by filesystems[2]'],
    ["tmpfs on a device", (l) => (l.filesystems[6]!.device = "/dev/sdd"), 'filesystems[6].device: format tmpfs goes with device "tmpfs"'],
    ["ext4 on tmpfs", (l) => (l.filesystems[3]!.device = "tmpfs"), "filesystems[3].device: format tmpfs goes with"],
    ["a relative mount path", (l) => (l.filesystems[2]!.path = "root"), 'filesystems[2].path: "root" must be an absolute path'],
    ["a missing mount path", (l) => (l.filesystems[2]!.path = ""), "filesystems[2].path"],
    ["a mounted swap", (l) => (l.filesystems[1]!.path = "/swap"), "filesystems[1].path: must be empty"],
    ["a path mounted twice", (l) => (l.filesystems[3]!.path = "/"), 'filesystems[3].path: "/" is already mounted by filesystems[2]'],
    ["a filesystem label twice", (l) => (l.filesystems[3]!.label = "root"), 'filesystems[3].label: "root" is already the label of filesystems[2]'],
    ["a long vfat label", (l) => (l.filesystems[0]!.label = "efi-partition"), 'filesystems[0].label: "efi-partition" must be up to 11'],
    ["no format", (l) => (l.filesystems[0]!.format = 0), "filesystems[0].format: must be set"],
    ["whitespace in create options", (l) => (l.filesystems[0]!.createOptions = ["-F 32"]), "filesystems[0].create_options[0]"],
    ["whitespace in mount options", (l) => (l.filesystems[2]!.mountOptions = ["noatime, nodiratime"]), "filesystems[2].mount_options[0]"],
    // constraints
    ["a wildcard size", (l) => (l.constraints.sizes = ["c1-*"]), 'constraints.sizes[0]: "c1-*": wildcards are not allowed'],
    ["no size", (l) => (l.constraints.sizes = []), "constraints.sizes: at least one size is required"],
    ["a size twice", (l) => (l.constraints.sizes = ["c1", "c1"]), 'constraints.sizes[1]: "c1" appears twice'],
    ["a bad size id", (l) => (l.constraints.sizes = ["C1 Large"]), "constraints.sizes[0]"],
    ["a bad image range", (l) => (l.constraints.images = { debian: "twelve" }), 'constraints.images["debian"]: "twelve" is not a semver range'],
    ["* as OS", (l) => (l.constraints.images = { "*": "*" }), 'constraints.images["*"]: the OS cannot be "*"'],
  ])("refuses %s", (_name, mutate, message) => {
    const l = good();
    mutate(l);
    const problems = layoutProblems(l).map((p) => `${p.path}: ${p.message}`);
    expect(problems.join("\n")).toContain(message);
  });
});

describe("overlap and selection", () => {
  const c = (sizes: string[], images: Record<string, string>) => ({ sizes, images });
  it.each([
    ["same size, intersecting ranges", c(["s1"], { debian: ">=12" }), c(["s1"], { debian: "<13" }), true],
    ["same size, disjoint ranges", c(["s1"], { debian: ">=12" }), c(["s1"], { debian: "<12" }), false],
    ["same size, different OS", c(["s1"], { debian: "*" }), c(["s1"], { ubuntu: "*" }), false],
    ["same size, one OS in common", c(["s1"], { debian: "*", ubuntu: "~20.04" }), c(["s1"], { ubuntu: ">= 20.04" }), true],
    ["same size, one for every image", c(["s1"], {}), c(["s1"], { ubuntu: "*" }), true],
    ["one size in common", c(["s1", "s2"], {}), c(["s2", "s3"], {}), true],
    ["different sizes", c(["s1"], {}), c(["s2"], {}), false],
    ["ranges with leading zeros", c(["s1"], { ubuntu: "~20.04" }), c(["s1"], { ubuntu: "~22.04" }), false],
  ])("%s", (_n, a, b, expected) => {
    expect(layoutsOverlap(a, b)).toBe(expected);
    expect(layoutsOverlap(b, a)).toBe(expected);
  });

  it.each([
    [c(["s1"], {}), "s1", "debian", "12.0", true],
    [c(["s1"], { debian: ">= 12" }), "s1", "debian", "12.0.1", true],
    [c(["s1"], { debian: ">= 12" }), "s1", "debian", "12.0", false],
    [c(["s1"], { debian: ">= 12" }), "s1", "ubuntu", "24.04.1", false],
    [c(["s1"], { debian: ">= 12" }), "s2", "debian", "12.0.1", false],
  ])("%j matches %s with %s %s: %s", (constraints, size, os, version, ok) => {
    expect(layoutMatches(constraints, size, { os, version })).toBe(ok);
  });

  it("selects the layout for the size and image, first by id", () => {
    const layouts = [
      { id: "c-any", spec: { ...good(), constraints: c(["s2"], {}) } },
      { id: "b-debian", spec: { ...good(), constraints: c(["s1"], { debian: ">= 12" }) } },
      { id: "a-ubuntu", spec: { ...good(), constraints: c(["s1"], { ubuntu: "*" }) } },
      { id: "a-any", spec: { ...good(), constraints: c(["s2"], {}) } },
    ];
    expect(selectLayout(layouts, "s1", { os: "debian", version: "12.0.1" })?.id).toBe("b-debian");
    expect(selectLayout(layouts, "s1", { os: "ubuntu", version: "24.04.1" })?.id).toBe("a-ubuntu");
    expect(selectLayout(layouts, "s1", { os: "debian", version: "11.0.1" })).toBeUndefined();
    expect(selectLayout(layouts, "s2", { os: "debian", version: "12.0.1" })?.id).toBe("a-any");
    expect(selectLayout(layouts, "s3", { os: "debian", version: "12.0.1" })).toBeUndefined();
  });
});
