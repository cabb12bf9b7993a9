import { describe, expect, it } from "vitest";
import { Format, GptType, layoutProblems, layoutsOverlap, LvmType, partitionDevice, RaidLevel, selectLayout, type LayoutSpec } from "../../../server/domain/filesystem-layout.js";

/** Two disks, a RAID1 over their second partitions, LVM on top, root and var. */
const good = (): LayoutSpec => ({
  disks: [
    { device: "/dev/sda", partitions: [{ number: 1, label: "efi", sizeMib: 512, gptType: GptType.BOOT }, { number: 2, label: "raid", sizeMib: 0, gptType: GptType.RAID }], wipeOnReinstall: false },
    { device: "/dev/nvme0n1", partitions: [{ number: 1, label: "efi", sizeMib: 512, gptType: GptType.BOOT }, { number: 2, label: "raid", sizeMib: 0, gptType: GptType.RAID }], wipeOnReinstall: true },
  ],
  raid: [{ arrayName: "md0", devices: ["/dev/sda2", "/dev/nvme0n1p2"], level: RaidLevel.RAID1, createOptions: ["--metadata=1.2"], spares: 0 }],
  volumeGroups: [{ name: "vg0", devices: ["/dev/md/md0"], tags: [] }],
  logicalVolumes: [
    { name: "root", volumeGroup: "vg0", sizeMib: 20480, lvmType: LvmType.LINEAR },
    { name: "var", volumeGroup: "vg0", sizeMib: 0, lvmType: LvmType.LINEAR },
  ],
  filesystems: [
    { path: "/boot/efi", device: "/dev/sda1", format: Format.VFAT, label: "efi", mountOptions: [], createOptions: ["-F32"] },
    { path: "/", device: "/dev/vg0/root", format: Format.EXT4, label: "root", mountOptions: ["noatime"], createOptions: [] },
    { path: "/var", device: "/dev/vg0/var", format: Format.EXT4, label: "var", mountOptions: [], createOptions: [] },
    { path: "/tmp", device: "tmpfs", format: Format.TMPFS, label: "", mountOptions: [], createOptions: [] },
  ],
  constraints: { sizes: ["c1-large"], images: { debian: ">= 12" } },
});

describe("filesystem layout rules", () => {
  it("accepts a complete layout", () => {
    expect(layoutProblems(good())).toEqual([]);
  });

  it("names partition devices like the kernel does", () => {
    expect(partitionDevice("/dev/sda", 3)).toBe("/dev/sda3");
    expect(partitionDevice("/dev/nvme0n1", 3)).toBe("/dev/nvme0n1p3");
  });

  it.each<[string, (l: LayoutSpec) => void, string]>([
    ["rest-of-disk partition not last", (l) => (l.disks[0]!.partitions[0]!.sizeMib = 0), "disks[0].partitions[0].size_mib: only the last partition"],
    ["duplicate partition number", (l) => (l.disks[0]!.partitions[1]!.number = 1), "disks[0].partitions[1].number"],
    ["missing gpt type", (l) => (l.disks[0]!.partitions[0]!.gptType = 0), "disks[0].partitions[0].gpt_type"],
    ["raid over an unknown device", (l) => (l.raid[0]!.devices = ["/dev/sda2", "/dev/sdz9"]), 'raid[0].devices[1]: "/dev/sdz9"'],
    ["raid with one device", (l) => (l.raid[0]!.devices = ["/dev/sda2"]), "at least two devices"],
    ["whitespace in create options", (l) => (l.raid[0]!.createOptions = ["--metadata 1.2"]), "raid[0].create_options[0]"],
    ["vg over an unknown device", (l) => (l.volumeGroups[0]!.devices = ["/dev/md/nope"]), "volume_groups[0].devices[0]"],
    ["lv in an unknown vg", (l) => (l.logicalVolumes[0]!.volumeGroup = "vg9"), 'logical_volumes[0].volume_group: "vg9"'],
    ["striped lv on one device", (l) => (l.logicalVolumes[0]!.lvmType = LvmType.STRIPED), "more than one device"],
    ["rest-of-vg lv not last", (l) => (l.logicalVolumes[0]!.sizeMib = 0), "logical_volumes[0].size_mib"],
    ["filesystem on an unknown device", (l) => (l.filesystems[1]!.device = "/dev/vg0/nope"), "filesystems[1].device"],
    ["relative mount path", (l) => (l.filesystems[1]!.path = "root"), "filesystems[1].path: must be an absolute path"],
    ["twice mounted", (l) => (l.filesystems[2]!.path = "/"), 'filesystems[2].path: "/" is mounted twice'],
    ["format missing", (l) => (l.filesystems[0]!.format = 0), "filesystems[0].format"],
    ["wildcard size", (l) => (l.constraints.sizes = ["c1-*"]), "wildcards are not allowed"],
    ["no size", (l) => (l.constraints.sizes = []), "constraints.sizes"],
    ["bad image range", (l) => (l.constraints.images = { debian: "twelve" }), "constraints.images"],
  ])("refuses %s", (_name, mutate, message) => {
    const l = good();
    mutate(l);
    expect(layoutProblems(l).map((p) => `${p.path}: ${p.message}`).join("\n")).toContain(message);
  });
});

describe("overlap and selection", () => {
  const c = (sizes: string[], images: Record<string, string>) => ({ sizes, images });
  it.each([
    ["same size, intersecting ranges", c(["s1"], { debian: ">=12" }), c(["s1"], { debian: "<13" }), true],
    ["same size, disjoint ranges", c(["s1"], { debian: ">=12" }), c(["s1"], { debian: "<12" }), false],
    ["same size, different OS", c(["s1"], { debian: "*" }), c(["s1"], { ubuntu: "*" }), false],
    ["same size, one for every image", c(["s1"], {}), c(["s1"], { ubuntu: "*" }), true],
    ["different sizes", c(["s1"], {}), c(["s2"], {}), false],
  ])("%s: %s", (_n, a, b, expected) => {
    expect(layoutsOverlap(a, b)).toBe(expected);
    expect(layoutsOverlap(b, a)).toBe(expected);
  });

  it("selects the layout for the size and image", () => {
    const layouts = [
      { id: "b-debian", spec: { ...good(), constraints: c(["s1"], { debian: ">= 12" }) } },
      { id: "a-ubuntu", spec: { ...good(), constraints: c(["s1"], { ubuntu: "*" }) } },
    ];
    expect(selectLayout(layouts, "s1", { os: "debian", version: "12.0.1" })?.id).toBe("b-debian");
    expect(selectLayout(layouts, "s1", { os: "ubuntu", version: "24.04.1" })?.id).toBe("a-ubuntu");
    expect(selectLayout(layouts, "s1", { os: "debian", version: "11.0.1" })).toBeUndefined();
    expect(selectLayout(layouts, "s2", { os: "debian", version: "12.0.1" })).toBeUndefined();
  });
});
