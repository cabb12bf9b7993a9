import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { beforeAll, describe, expect, it } from "vitest";
import { FilesystemLayoutService as AdminFilesystemLayoutService } from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImageService } from "../../gen/metal/admin/v1/image_pb.js";
import { SizeImageConstraintService as AdminSizeImageConstraintService } from "../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { SizeService as AdminSizeService } from "../../gen/metal/admin/v1/size_pb.js";
import { FilesystemLayoutService, Format, GptType, type FilesystemLayout } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageClassification, ImageFeature, ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { SizeImageConstraintService } from "../../gen/metal/api/v1/size_image_constraint_pb.js";
import { SizeConstraintType } from "../../gen/metal/api/v1/size_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { FilesystemLayoutSchema } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let adminImages: Client<typeof AdminImageService>;
let images: Client<typeof ImageService>;

const img = (id: string, extra: Record<string, unknown> = {}) => ({ id, url: `https://images.example/${id}.tar.lz4`, features: [ImageFeature.MACHINE], ...extra });

beforeAll(async () => {
  server = await startTestServer();
  adminImages = server.client(AdminImageService, server.adminToken);
  images = server.client(ImageService, server.adminToken);
  for (const id of ["debian-12.0.20240101", "debian-12.0.20241201", "debian-12.1.20240601", "ubuntu-24.04.20240801"]) await adminImages.create(img(id));
  await adminImages.create(img("debian-12.2.20250101", { features: [ImageFeature.FIREWALL] }));
  await adminImages.create(img("debian-13.0.20250601", { expiresAt: timestampFromDate(new Date(Date.now() - 60_000)) }));
  await server.client(AdminSizeService, server.adminToken).create({
    id: "c1-large",
    constraints: [{ type: SizeConstraintType.CORES, min: 8n, max: 8n }],
  });
});

describe("images", () => {
  it("stores OS, version, defaults for classification and expiry", async () => {
    const { image } = await images.get({ id: "ubuntu-24.04.20240801" });
    expect(image).toMatchObject({ os: "ubuntu", version: "24.04.20240801", classification: ImageClassification.PREVIEW });
    const days = (Number(image!.expiresAt!.seconds) * 1000 - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(89);
    expect(days).toBeLessThan(91);
  });

  it("resolves short ids to the newest unexpired matching version", async () => {
    expect((await images.get({ id: "debian-12" })).image?.id).toBe("debian-12.2.20250101");
    expect((await images.get({ id: "debian-12.0" })).image?.id).toBe("debian-12.0.20241201");
    expect((await images.latest({ os: "debian", feature: ImageFeature.MACHINE })).image?.id).toBe("debian-12.1.20240601");
    expect((await images.get({ id: "debian-12.0.20240101" })).image?.id).toBe("debian-12.0.20240101");
    await expectCode(images.get({ id: "debian-13" }), Code.NotFound, 'image "debian-13" not found');
    await expectCode(images.latest({ os: "fedora" }), Code.NotFound);
  });

  it("lists with filters", async () => {
    const fw = await images.list({ feature: ImageFeature.FIREWALL });
    expect(fw.images.map((i) => i.id)).toEqual(["debian-12.2.20250101"]);
    const ubuntu = await images.list({ os: "ubuntu" });
    expect(ubuntu.images.map((i) => i.id)).toEqual(["ubuntu-24.04.20240801"]);
  });

  it.each([
    ["no version", img("debian"), "id:"],
    ["uppercase os", img("Debian-12.0.1"), "id:"],
    ["four-part version", img("debian-1.2.3.4"), "id:"],
    ["no url", img("debian-10.0.1", { url: "" }), "url: is required"],
    ["ftp url", img("debian-10.0.2", { url: "ftp://x/y" }), "url:"],
    ["no features", img("debian-10.0.3", { features: [] }), "features: at least one feature"],
    ["unspecified feature", img("debian-10.0.4", { features: [0] }), "features[0]: must be set"],
    ["unknown classification", img("debian-10.0.5", { classification: 9 }), "classification"],
  ])("refuses %s and stores nothing", async (_n, req, message) => {
    await expectCode(adminImages.create(req as never), Code.InvalidArgument, message);
    expect((await adminImages.list({ paging: { limit: 1000 } })).images.map((i) => i.id)).not.toContain(req.id);
  });

  it("updates with optimistic locking and deletes", async () => {
    const { image } = await adminImages.create(img("alpine-3.20.1"));
    const up = await adminImages.update({ id: "alpine-3.20.1", version: image!.meta!.version, classification: ImageClassification.SUPPORTED });
    expect(up.image?.classification).toBe(ImageClassification.SUPPORTED);
    await expectCode(adminImages.update({ id: "alpine-3.20.1", version: image!.meta!.version, name: "x" }), Code.Aborted);
    await adminImages.delete({ id: "alpine-3.20.1" });
    await expectCode(images.get({ id: "alpine-3.20.1" }), Code.NotFound);
  });
});

describe("size-image constraints", () => {
  it("limit the versions of an OS on a size", async () => {
    const constraints = server.client(AdminSizeImageConstraintService, server.adminToken);
    await expectCode(constraints.create({ size: "no-such-size", images: { debian: ">= 12" } }), Code.NotFound, 'size "no-such-size"');
    await expectCode(constraints.create({ size: "c1-large", images: { debian: "twelve" } }), Code.InvalidArgument, 'images["debian"]');
    await expectCode(constraints.create({ size: "c1-large", images: { "*": "*" } }), Code.InvalidArgument, 'cannot be "*"');
    await constraints.create({ size: "c1-large", images: { debian: ">= 12.1" } });
    await expectCode(constraints.create({ size: "c1-large", images: { debian: "*" } }), Code.AlreadyExists);
    const tryIt = server.client(SizeImageConstraintService, server.adminToken);
    expect((await tryIt.try({ size: "c1-large", image: "debian-12" })).image).toBe("debian-12.2.20250101");
    expect((await tryIt.try({ size: "c1-large", image: "ubuntu-24.04" })).image).toBe("ubuntu-24.04.20240801");
    await expectCode(tryIt.try({ size: "c1-large", image: "debian-12.0" }), Code.FailedPrecondition, 'allows debian only in versions ">= 12.1"');
    await expectCode(tryIt.try({ size: "nope", image: "debian-12" }), Code.NotFound);
  });
});

type LayoutInit = MessageInitShape<typeof FilesystemLayoutSchema>;
const layout = (id: string, sizes: string[], imagesByOs: Record<string, string>): LayoutInit => ({
  id,
  disks: [{ device: "/dev/sda", partitions: [{ number: 1, label: "efi", sizeMib: 512n, gptType: GptType.BOOT }, { number: 2, label: "root", sizeMib: 0n, gptType: GptType.LINUX }] }],
  filesystems: [
    { path: "/boot/efi", device: "/dev/sda1", format: Format.VFAT },
    { path: "/", device: "/dev/sda2", format: Format.EXT4 },
  ],
  constraints: { sizes, images: imagesByOs },
});

describe("filesystem layouts", () => {
  let layouts: Client<typeof AdminFilesystemLayoutService>;
  beforeAll(() => {
    layouts = server.client(AdminFilesystemLayoutService, server.adminToken);
  });

  it("creates, refuses overlaps and answers Try", async () => {
    await layouts.create({ filesystemLayout: layout("debian-layout", ["c1-large"], { debian: ">= 12" }) });
    await layouts.create({ filesystemLayout: layout("ubuntu-layout", ["c1-large"], { ubuntu: "*" }) });
    await expectCode(layouts.create({ filesystemLayout: layout("clash", ["c1-large"], { debian: "< 13" }) }), Code.InvalidArgument, 'overlap with layout "debian-layout"');
    const tryIt = server.client(FilesystemLayoutService, server.adminToken);
    expect((await tryIt.try({ size: "c1-large", image: "debian-12" })).filesystemLayout?.id).toBe("debian-layout");
    expect((await tryIt.try({ size: "c1-large", image: "ubuntu-24.04" })).filesystemLayout?.id).toBe("ubuntu-layout");
    await expectCode(tryIt.try({ size: "c2", image: "debian-12" }), Code.NotFound);
    const got = await tryIt.get({ id: "debian-layout" });
    expect(got.filesystemLayout?.disks[0]?.partitions[0]?.sizeMib).toBe(512n);
  });

  it("refuses invalid layouts with the field path and stores nothing", async () => {
    const bad = layout("bad-layout", ["c9"], {});
    (bad.filesystems as { device: string }[])[1]!.device = "/dev/sdb1";
    await expectCode(layouts.create({ filesystemLayout: bad }), Code.InvalidArgument, 'filesystem_layout.filesystems[1].device: "/dev/sdb1"');
    const bad2 = layout("bad-layout", ["c9"], {});
    (bad2.disks as { partitions: { sizeMib: bigint }[] }[])[0]!.partitions[0]!.sizeMib = 0n;
    await expectCode(layouts.create({ filesystemLayout: bad2 }), Code.InvalidArgument, "disks[0].partitions[0].size_mib");
    await expectCode(server.client(FilesystemLayoutService, server.adminToken).get({ id: "bad-layout" }), Code.NotFound);
  });

  it("updates with optimistic locking", async () => {
    const { filesystemLayout: l } = await layouts.create({ filesystemLayout: layout("upd-layout", ["c3"], {}) });
    const next = { ...(l as FilesystemLayout), description: "changed" };
    const up = await layouts.update({ filesystemLayout: next });
    expect(up.filesystemLayout?.description).toBe("changed");
    await expectCode(layouts.update({ filesystemLayout: next }), Code.Aborted);
  });

  it("lets exactly one of many parallel overlapping creates win", async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => layouts.create({ filesystemLayout: layout(`par-${i}`, ["c4"], {}) })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.InvalidArgument);
  });
});
