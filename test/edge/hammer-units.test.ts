import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { downloadVerified, fetchChecksum, ImageError } from "../../edge/hammer/image.js";
import { disksToWipe, LayoutError, partitionDevice, planStorage } from "../../edge/hammer/layout.js";
import { FilesystemLayoutSchema, Format, GptType, RaidLevel } from "../../gen/metal/api/v1/filesystem_layout_pb.js";

const GB = 1_000_000_000n;

const layout = (extra: Omit<MessageInitShape<typeof FilesystemLayoutSchema>, "$typeName"> = {}) =>
  create(FilesystemLayoutSchema, {
    id: "l1",
    disks: [
      {
        device: "/dev/sda",
        wipeOnReinstall: true,
        partitions: [
          { number: 1, sizeMib: 512n, gptType: GptType.BOOT, label: "efi" },
          { number: 2, sizeMib: 0n, gptType: GptType.LINUX, label: "root" },
        ],
      },
      { device: "/dev/nvme0n1", wipeOnReinstall: false, partitions: [{ number: 1, sizeMib: 0n, gptType: GptType.LINUX }] },
    ],
    filesystems: [
      { path: "/boot/efi", device: "/dev/sda1", format: Format.VFAT, label: "efi" },
      { path: "/", device: "/dev/sda2", format: Format.EXT4, label: "root" },
      { path: "/var/lib", device: "/dev/nvme0n1p1", format: Format.EXT4 },
      { path: "/tmp", device: "tmpfs", format: Format.TMPFS },
    ],
    ...extra,
  });
const disks = [
  { name: "/dev/sda", sizeBytes: 240n * GB },
  { name: "/dev/nvme0n1", sizeBytes: 960n * GB },
  { name: "/dev/sdc", sizeBytes: 4000n * GB },
];

describe("layout -> partition plan", () => {
  it("lays partitions out from 1 MiB, the last one to the end of the disk, with the right device names", () => {
    const plan = planStorage(layout(), { disks });
    expect(plan.disks.map((d) => d.device)).toEqual(["/dev/sda", "/dev/nvme0n1"]);
    const sda = plan.disks[0]!.partitions;
    expect(sda.map((p) => [p.device, p.startMib, p.gptType])).toEqual([
      ["/dev/sda1", 1, "boot"],
      ["/dev/sda2", 513, "linux"],
    ]);
    expect(sda[1]!.endMib).toBe(Number((240n * GB) / 2n ** 20n) - 1);
    expect(plan.disks[1]!.partitions[0]!.device).toBe("/dev/nvme0n1p1");
    expect(plan.rootDevice).toBe("/dev/sda2");
    expect(plan.primaryDisk).toBe("/dev/sda");
    expect(plan.format.map((f) => f.device)).toEqual(["/dev/sda1", "/dev/sda2", "/dev/nvme0n1p1"]);
    expect(plan.wipe).toEqual([]);
    expect(partitionDevice("/dev/md0", 1)).toBe("/dev/md0p1");
  });

  it("plans RAID and LVM on top of partitions", () => {
    const plan = planStorage(
      layout({
        raid: [{ arrayName: "/dev/md0", devices: ["/dev/sda2", "/dev/nvme0n1p1"], level: RaidLevel.RAID_LEVEL_1 }],
        volumeGroups: [{ name: "vg0", devices: ["/dev/md0"] }],
        logicalVolumes: [{ name: "root", volumeGroup: "vg0", sizeMib: 0n }],
        filesystems: [{ path: "/", device: "/dev/vg0/root", format: Format.EXT4 }],
      }),
      { disks },
    );
    expect(plan.raid).toEqual([expect.objectContaining({ device: "/dev/md0", level: 1 })]);
    expect(plan.volumes.map((v) => v.device)).toEqual(["/dev/vg0/root"]);
    expect(plan.rootDevice).toBe("/dev/vg0/root");
  });

  it("refuses layouts that cannot work before any disk is touched", () => {
    expect(() => planStorage(layout(), { disks: [disks[0]!] })).toThrow(/needs disk \/dev\/nvme0n1/);
    const tooBig = layout({ disks: [{ device: "/dev/sda", partitions: [{ number: 1, sizeMib: 10_000_000n }] }], filesystems: [{ path: "/", device: "/dev/sda1", format: Format.EXT4 }] });
    expect(() => planStorage(tooBig, { disks })).toThrow(/does not fit/);
    const restFirst = layout({
      disks: [
        {
          device: "/dev/sda",
          partitions: [
            { number: 1, sizeMib: 0n },
            { number: 2, sizeMib: 10n },
          ],
        },
      ],
      filesystems: [{ path: "/", device: "/dev/sda1", format: Format.EXT4 }],
    });
    expect(() => planStorage(restFirst, { disks })).toThrow(/not the last/);
    expect(() => planStorage(layout({ filesystems: [{ path: "/", device: "/dev/sdz1", format: Format.EXT4 }] }), { disks })).toThrow(/not created by the layout/);
    expect(() => planStorage(layout({ filesystems: [{ path: "/data", device: "/dev/sda2", format: Format.EXT4 }] }), { disks })).toThrow(LayoutError);
  });
});

describe("wipe rules", () => {
  it("a free machine loses every disk, including the ones no layout mentions", () => {
    expect(disksToWipe("free", disks)).toEqual(["/dev/sda", "/dev/nvme0n1", "/dev/sdc"]);
  });

  it("a reinstall wipes only the layout's wipeOnReinstall disks and keeps the others' partitions and filesystems", () => {
    const wiped = disksToWipe("reinstall", disks, layout());
    expect(wiped).toEqual(["/dev/sda"]);
    const plan = planStorage(layout(), { disks }, wiped);
    expect(plan.wipe).toEqual(["/dev/sda"]);
    expect(plan.disks.map((d) => d.device)).toEqual(["/dev/sda"]);
    expect(plan.format.map((f) => f.device)).toEqual(["/dev/sda1", "/dev/sda2"]);
    // Still mounted for the install step.
    expect(plan.filesystems.map((f) => f.device)).toContain("/dev/nvme0n1p1");
  });

  it("a reinstall needs the layout, and refuses one whose root disk may not be wiped", () => {
    expect(() => disksToWipe("reinstall", disks)).toThrow(LayoutError);
    expect(() => planStorage(layout(), { disks }, [])).toThrow(/root filesystem is on \/dev\/sda/);
  });
});

describe("image download", () => {
  let server: Server;
  let base: string;
  let dir: string;
  const good = Buffer.from(JSON.stringify({ os: "simos", version: "1" }));
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hammer-units-"));
    const files: Record<string, Buffer | string> = {
      "/good.img": good,
      "/good.img.sha256": `${sha(good)}  good.img\n`,
      // Same checksum file, one byte of the image flipped on the way.
      "/corrupt.img": Buffer.concat([good.subarray(0, 5), Buffer.from("X"), good.subarray(6)]),
      "/corrupt.img.sha256": `${sha(good)}  corrupt.img\n`,
      "/nosum.img": good,
      "/garbage.img.sha256": "not a digest",
    };
    server = createServer((req, res) => {
      const body = files[req.url ?? ""];
      if (body === undefined) return void res.writeHead(404).end();
      res.writeHead(200).end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps an image whose SHA-256 matches <url>.sha256", async () => {
    const url = `${base}/good.img`;
    const file = join(dir, "good");
    expect(await downloadVerified(url, await fetchChecksum(url), file)).toEqual({ bytes: good.length });
    expect(await readFile(file)).toEqual(good);
  });

  it("refuses a corrupt image and leaves nothing behind", async () => {
    const url = `${base}/corrupt.img`;
    const file = join(dir, "corrupt");
    await expect(downloadVerified(url, await fetchChecksum(url), file)).rejects.toThrow(/checksum mismatch/);
    expect(await readdir(dir)).not.toContain("corrupt");
  });

  it("refuses an image without a usable checksum", async () => {
    await expect(fetchChecksum(`${base}/nosum.img`)).rejects.toThrow(ImageError);
    await expect(fetchChecksum(`${base}/garbage.img`)).rejects.toThrow(/not a SHA-256/);
  });
});
