import { clone, create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { FilesystemLayoutService as AdminFilesystemLayoutService } from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImageService } from "../../gen/metal/admin/v1/image_pb.js";
import { type FilesystemLayout, FilesystemLayoutSchema, FilesystemLayoutService, Format, GptType, LvmType, RaidLevel } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageFeature } from "../../gen/metal/api/v1/image_pb.js";
import type { DbHandle } from "../../server/db/handle.js";
import { createAdminFilesystemLayoutService } from "../../server/services/admin/filesystem-layout-service.js";
import { createAdminImageService } from "../../server/services/admin/image-service.js";
import { createFilesystemLayoutService } from "../../server/services/api/filesystem-layout-service.js";
import { expectCode } from "../helpers/expect.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
let admin: Client<typeof AdminFilesystemLayoutService>;
let api: Client<typeof FilesystemLayoutService>;

type LayoutInit = MessageInitShape<typeof FilesystemLayoutSchema>;

/** A simple layout: EFI and root on one disk. */
const simple = (id: string, sizes: string[], images: Record<string, string> = {}): LayoutInit => ({
  id,
  disks: [
    {
      device: "/dev/sda",
      partitions: [
        { number: 1, label: "efi", sizeMib: 512n, gptType: GptType.BOOT },
        { number: 2, label: "root", sizeMib: 0n, gptType: GptType.LINUX },
      ],
    },
  ],
  filesystems: [
    { path: "/boot/efi", device: "/dev/sda1", format: Format.VFAT, label: "efi", createOptions: ["-F", "32"] },
    { path: "/", device: "/dev/sda2", format: Format.EXT4, label: "root" },
  ],
  constraints: { sizes, images },
});

/** Everything at once: two NVMe disks, RAID1, LVM with a striped volume, swap, tmpfs. */
const full = (id: string, sizes: string[], images: Record<string, string> = {}): LayoutInit => ({
  id,
  name: "raid and lvm",
  description: "mirrored root, striped scratch",
  disks: [0, 1].map((n) => ({
    device: `/dev/nvme${n}n1`,
    wipeOnReinstall: n === 1,
    partitions: [
      { number: 1, label: `efi${n}`, sizeMib: 512n, gptType: GptType.BOOT },
      { number: 2, label: `md${n}`, sizeMib: 100_000n, gptType: GptType.RAID },
      { number: 3, label: `lvm${n}`, sizeMib: 0n, gptType: GptType.LVM },
    ],
  })),
  raid: [{ arrayName: "root", devices: ["/dev/nvme0n1p2", "/dev/nvme1n1p2"], level: RaidLevel.RAID_LEVEL_1, createOptions: ["--metadata=1.0"], spares: 0 }],
  volumeGroups: [{ name: "data", devices: ["/dev/nvme0n1p3", "/dev/nvme1n1p3"], tags: ["scratch"] }],
  logicalVolumes: [
    { name: "swap", volumeGroup: "data", sizeMib: 8192n, lvmType: LvmType.LINEAR },
    { name: "scratch", volumeGroup: "data", sizeMib: 0n, lvmType: LvmType.STRIPED },
  ],
  filesystems: [
    { path: "/boot/efi", device: "/dev/nvme0n1p1", format: Format.VFAT, label: "efi" },
    { path: "", device: "/dev/nvme1n1p1", format: Format.NONE },
    { path: "/", device: "/dev/md/root", format: Format.EXT4, label: "root", mountOptions: ["noatime"] },
    { path: "", device: "/dev/data/swap", format: Format.SWAP, label: "swap" },
    { path: "/scratch", device: "/dev/data/scratch", format: Format.EXT4, label: "scratch", createOptions: ["-m", "0"] },
    { path: "/tmp", device: "tmpfs", format: Format.TMPFS, mountOptions: ["size=4g"] },
  ],
  constraints: { sizes, images },
});

async function all(): Promise<FilesystemLayout[]> {
  return (await admin.list({ paging: { limit: 1000 } })).filesystemLayouts;
}

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  const transport = createRouterTransport((router) => {
    router.service(AdminImageService, createAdminImageService({ db }));
    router.service(AdminFilesystemLayoutService, createAdminFilesystemLayoutService({ db }));
    router.service(FilesystemLayoutService, createFilesystemLayoutService({ db }));
  });
  admin = createClient(AdminFilesystemLayoutService, transport);
  api = createClient(FilesystemLayoutService, transport);
  const images = createClient(AdminImageService, transport);
  for (const id of ["debian-11.0.20230101", "debian-12.0.20241201", "debian-12.1.20240601", "ubuntu-24.04.20240801", "alpine-3", "firewall-ubuntu-3.0.20240101"]) {
    await images.create({ id, url: `https://images.example/${id}`, features: [ImageFeature.MACHINE] });
  }
});

describe("filesystem layouts", () => {
  it("store every field and are read back through both services", async () => {
    const { filesystemLayout: created } = await admin.create({ filesystemLayout: full("full", ["n1-large"]) });
    const expected = create(FilesystemLayoutSchema, full("full", ["n1-large"]));
    expect({ ...created, meta: undefined }).toEqual({ ...expected, meta: undefined });
    expect(created!.meta!.version).toBe(1n);
    expect((await api.get({ id: "full" })).filesystemLayout).toEqual(created);
    expect((await api.list({})).filesystemLayouts.map((l) => l.id)).toContain("full");
    await expectCode(admin.create({ filesystemLayout: full("full", ["n2-large"]) }), Code.AlreadyExists, 'filesystem layout "full" already exists');
    await expectCode(api.get({ id: "nope" }), Code.NotFound, 'filesystem layout "nope" not found');
    await expectCode(api.get({ id: "Not An Id" }), Code.InvalidArgument, "id:");
  });

  it("are updated whole with optimistic locking", async () => {
    const { filesystemLayout: l } = await admin.create({ filesystemLayout: simple("upd", ["u1"]) });
    const next = clone(FilesystemLayoutSchema, l!);
    next.description = "changed";
    next.filesystems[1]!.mountOptions = ["noatime"];
    const { filesystemLayout: up } = await admin.update({ filesystemLayout: next });
    expect(up).toMatchObject({ description: "changed" });
    expect(up!.filesystems[1]!.mountOptions).toEqual(["noatime"]);
    expect(up!.meta!.version).toBe(2n);

    const stale = clone(FilesystemLayoutSchema, next);
    stale.description = "stale";
    await expectCode(admin.update({ filesystemLayout: stale }), Code.Aborted, "was changed by someone else");
    const noVersion = clone(FilesystemLayoutSchema, up!);
    noVersion.meta = undefined;
    await expectCode(admin.update({ filesystemLayout: noVersion }), Code.InvalidArgument, "filesystem_layout.meta.version: is required");
    const invalid = clone(FilesystemLayoutSchema, up!);
    invalid.filesystems[1]!.device = "/dev/sdb1";
    await expectCode(admin.update({ filesystemLayout: invalid }), Code.InvalidArgument, 'filesystem_layout.filesystems[1].device: "/dev/sdb1"');
    expect((await api.get({ id: "upd" })).filesystemLayout).toEqual(up);

    const gone = clone(FilesystemLayoutSchema, up!);
    gone.id = "never-created";
    await expectCode(admin.update({ filesystemLayout: gone }), Code.NotFound);
  });

  it("are deleted", async () => {
    await admin.create({ filesystemLayout: simple("del", ["d1"]) });
    expect((await admin.delete({ id: "del" })).filesystemLayout?.id).toBe("del");
    await expectCode(api.get({ id: "del" }), Code.NotFound);
    await expectCode(admin.delete({ id: "del" }), Code.NotFound);
  });

  it("page through the list ordered by id", async () => {
    for (const i of [4, 2, 0, 3, 1]) await admin.create({ filesystemLayout: simple(`page-${i}`, [`page-size-${i}`]) });
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await api.list({ paging: { limit: 2, pageToken } });
      expect(page.filesystemLayouts.length).toBeLessThanOrEqual(2);
      seen.push(...page.filesystemLayouts.map((l) => l.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual([...seen].sort());
    expect(seen.filter((id) => id.startsWith("page-"))).toEqual(["page-0", "page-1", "page-2", "page-3", "page-4"]);
    await expectCode(admin.list({ paging: { pageToken: "nope" } }), Code.InvalidArgument, "paging.page_token");
  });
});

describe("invalid layouts", () => {
  const mutated = (mutate: (l: FilesystemLayout) => void) => {
    const l = create(FilesystemLayoutSchema, full("invalid", ["x1"]));
    mutate(l);
    return l;
  };

  it.each<[string, (l: FilesystemLayout) => void, string]>([
    ["no id", (l) => (l.id = ""), "filesystem_layout.id: is required"],
    ["no constraints", (l) => (l.constraints = undefined), "filesystem_layout.constraints: is required"],
    [
      "a rest-of-disk partition that is not last",
      (l) => (l.disks[0]!.partitions[1]!.sizeMib = 0n),
      "filesystem_layout.disks[0].partitions[1].size_mib: only the last partition may take the rest of the disk (size 0)",
    ],
    ["a partition number twice", (l) => (l.disks[0]!.partitions[2]!.number = 2), "filesystem_layout.disks[0].partitions[2].number: partition 2 appears twice"],
    ["a partition label twice", (l) => (l.disks[1]!.partitions[0]!.label = "efi0"), 'filesystem_layout.disks[1].partitions[0].label: "efi0" is already the label'],
    ["a partition without gpt type", (l) => (l.disks[0]!.partitions[0]!.gptType = GptType.UNSPECIFIED), "filesystem_layout.disks[0].partitions[0].gpt_type: must be set"],
    ["a huge partition", (l) => (l.disks[0]!.partitions[0]!.sizeMib = 2n ** 60n), "filesystem_layout.disks[0].partitions[0].size_mib: must be below 2^53"],
    ["raid over a missing partition", (l) => (l.raid[0]!.devices = ["/dev/nvme0n1p2", "/dev/nvme1n1p9"]), 'filesystem_layout.raid[0].devices[1]: "/dev/nvme1n1p9" is not a partition or a disk'],
    ["raid over one device", (l) => (l.raid[0]!.devices = ["/dev/nvme0n1p2"]), "filesystem_layout.raid[0].devices: a RAID array needs more than one device"],
    ["raid without level", (l) => (l.raid[0]!.level = RaidLevel.RAID_LEVEL_UNSPECIFIED), "filesystem_layout.raid[0].level: must be set"],
    ["whitespace in raid options", (l) => (l.raid[0]!.createOptions = ["--metadata 1.0"]), "filesystem_layout.raid[0].create_options[0]"],
    ["a volume group over a missing device", (l) => (l.volumeGroups[0]!.devices = ["/dev/sdq"]), 'filesystem_layout.volume_groups[0].devices[0]: "/dev/sdq"'],
    [
      "a striped volume on one device",
      (l) => (l.volumeGroups[0]!.devices = ["/dev/nvme0n1p3"]),
      "filesystem_layout.logical_volumes[1].lvm_type: striped and raid1 volumes need a volume group of more than one device",
    ],
    ["a rest-of-group volume that is not last", (l) => (l.logicalVolumes[0]!.sizeMib = 0n), "filesystem_layout.logical_volumes[0].size_mib: only the last volume"],
    ["a volume in a missing group", (l) => (l.logicalVolumes[0]!.volumeGroup = "vg9"), 'filesystem_layout.logical_volumes[0].volume_group: "vg9"'],
    ["a volume without type", (l) => (l.logicalVolumes[0]!.lvmType = LvmType.UNSPECIFIED), "filesystem_layout.logical_volumes[0].lvm_type: must be set"],
    ["a filesystem on a missing device", (l) => (l.filesystems[2]!.device = "/dev/md/nope"), 'filesystem_layout.filesystems[2].device: "/dev/md/nope"'],
    ["a filesystem on a raid member", (l) => (l.filesystems[2]!.device = "/dev/nvme0n1p2"), "is already used by raid[0]"],
    ["whitespace in create options", (l) => (l.filesystems[4]!.createOptions = ["-m 0"]), "filesystem_layout.filesystems[4].create_options[0]"],
    ["a filesystem without format", (l) => (l.filesystems[0]!.format = Format.UNSPECIFIED), "filesystem_layout.filesystems[0].format: must be set"],
    ["a path mounted twice", (l) => (l.filesystems[4]!.path = "/"), 'filesystem_layout.filesystems[4].path: "/" is already mounted'],
    ["a wildcard size", (l) => (l.constraints!.sizes = ["n1-*"]), "filesystem_layout.constraints.sizes[0]"],
    ["no size", (l) => (l.constraints!.sizes = []), "filesystem_layout.constraints.sizes: at least one size is required"],
    ["* as OS", (l) => (l.constraints!.images = { "*": "*" }), 'filesystem_layout.constraints.images["*"]'],
    ["a range that does not parse", (l) => (l.constraints!.images = { debian: "twelve" }), 'filesystem_layout.constraints.images["debian"]'],
    ["65 filesystems", (l) => (l.filesystems = Array.from({ length: 65 }, () => l.filesystems[0]!)), "filesystem_layout.filesystems: must have at most 64 entries"],
  ])("refuses %s and stores nothing", async (_n, mutate, message) => {
    const before = await all();
    await expectCode(admin.create({ filesystemLayout: mutated(mutate) }), Code.InvalidArgument, message);
    expect(await all()).toEqual(before);
  });

  it("refuses a request without layout", async () => {
    await expectCode(admin.create({}), Code.InvalidArgument, "filesystem_layout: is required");
  });
});

describe("overlapping layouts", () => {
  beforeAll(async () => {
    await admin.create({ filesystemLayout: simple("o-debian", ["o1", "o2"], { debian: ">= 12" }) });
    await admin.create({ filesystemLayout: simple("o-ubuntu", ["o1"], { ubuntu: "*" }) });
  });

  it.each<[string, string[], Record<string, string>]>([
    ["another OS", ["o1"], { alpine: "*" }],
    ["a disjoint range", ["o1"], { debian: "< 12" }],
    ["another size", ["o3"], { debian: ">= 12" }],
  ])("may share a size with %s", async (name, sizes, images) => {
    const id = `ok-${name.replace(/\W+/g, "-")}`.toLowerCase();
    await admin.create({ filesystemLayout: simple(id, sizes, images) });
    await admin.delete({ id });
  });

  it.each<[string, string[], Record<string, string>, string]>([
    ["an intersecting range", ["o2"], { debian: "< 13" }, "o-debian"],
    ["every image", ["o1"], {}, "o-debian"],
    ["a second size in common", ["o9", "o2"], { debian: "12.x" }, "o-debian"],
    ["the same OS", ["o1"], { ubuntu: "~24.04" }, "o-ubuntu"],
  ])("are refused for %s, and nothing is stored", async (_n, sizes, images, clash) => {
    const before = await all();
    await expectCode(admin.create({ filesystemLayout: simple("clash", sizes, images) }), Code.InvalidArgument, `filesystem_layout.constraints: overlaps layout "${clash}"`);
    expect(await all()).toEqual(before);
  });

  it("are refused on update too, while a layout never clashes with itself", async () => {
    const { filesystemLayout: l } = await admin.create({ filesystemLayout: simple("o-alpine", ["o1"], { alpine: "*" }) });
    const widened = clone(FilesystemLayoutSchema, l!);
    widened.constraints!.images = { alpine: "*", ubuntu: ">= 20.04" };
    await expectCode(admin.update({ filesystemLayout: widened }), Code.InvalidArgument, 'overlaps layout "o-ubuntu"');
    const same = clone(FilesystemLayoutSchema, l!);
    same.description = "still alpine";
    expect((await admin.update({ filesystemLayout: same })).filesystemLayout?.meta?.version).toBe(2n);
  });

  it("lets exactly one of 8 parallel overlapping creates win", async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => admin.create({ filesystemLayout: simple(`race-${i}`, ["race-size"], { debian: i % 2 === 0 ? "*" : ">= 12" }) })));
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.InvalidArgument);
    expect((await all()).filter((l) => l.id.startsWith("race-"))).toHaveLength(1);
  });

  it("lets 8 parallel creates that do not overlap all win", async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => admin.create({ filesystemLayout: simple(`calm-${i}`, [`calm-size-${i}`]) })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(8);
  });

  it("lets exactly one of 8 parallel updates into an overlap win", async () => {
    const created = await Promise.all(Array.from({ length: 8 }, async (_, i) => (await admin.create({ filesystemLayout: simple(`move-${i}`, [`move-from-${i}`]) })).filesystemLayout!));
    const results = await Promise.allSettled(
      created.map((l) => {
        const moved = clone(FilesystemLayoutSchema, l);
        moved.constraints!.sizes = ["move-to"];
        return admin.update({ filesystemLayout: moved });
      }),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await all()).filter((l) => l.constraints?.sizes.includes("move-to"))).toHaveLength(1);
  });
});

describe("Try", () => {
  beforeAll(async () => {
    await admin.create({ filesystemLayout: simple("t-debian-new", ["t1"], { debian: ">= 12.1" }) });
    await admin.create({ filesystemLayout: simple("t-debian-old", ["t1"], { debian: "< 12.1" }) });
    await admin.create({ filesystemLayout: full("t-any", ["t2"]) });
  });

  it.each([
    ["t1", "debian-12.1.20240601", "t-debian-new"],
    ["t1", "debian-12", "t-debian-new"],
    ["t1", "debian-12.0", "t-debian-old"],
    ["t1", "debian-11", "t-debian-old"],
    ["t2", "ubuntu", "t-any"],
    ["t2", "alpine-3", "t-any"],
  ])("size %s with image %s gets %s", async (size, image, id) => {
    expect((await api.try({ size, image })).filesystemLayout?.id).toBe(id);
  });

  it("answers NotFound when no layout or no image matches", async () => {
    await expectCode(api.try({ size: "t1", image: "ubuntu-24.04" }), Code.NotFound, 'no filesystem layout is for size "t1" and image "ubuntu-24.04.20240801"');
    await expectCode(api.try({ size: "t9", image: "debian" }), Code.NotFound, "no filesystem layout");
    // A version without patch part cannot satisfy a range.
    await expectCode(api.try({ size: "t1", image: "alpine-3" }), Code.NotFound);
    await expectCode(api.try({ size: "t1", image: "fedora-40" }), Code.NotFound, 'image "fedora-40" not found');
  });

  it("refuses bad input", async () => {
    await expectCode(api.try({ size: "", image: "debian" }), Code.InvalidArgument, "size: is required");
    await expectCode(api.try({ size: "t1", image: "" }), Code.InvalidArgument, "image: is required");
  });
});
