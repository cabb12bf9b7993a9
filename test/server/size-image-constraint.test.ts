import { type Client, Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { ImageService as AdminImageService } from "../../gen/metal/admin/v1/image_pb.js";
import { SizeImageConstraintService as AdminSizeImageConstraintService } from "../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { ImageFeature } from "../../gen/metal/api/v1/image_pb.js";
import { type SizeImageConstraint, SizeImageConstraintService } from "../../gen/metal/api/v1/size_image_constraint_pb.js";
import type { DbHandle } from "../../server/db/handle.js";
import { createAdminImageService } from "../../server/services/admin/image-service.js";
import { createAdminSizeImageConstraintService } from "../../server/services/admin/size-image-constraint-service.js";
import { createSizeImageConstraintService } from "../../server/services/api/size-image-constraint-service.js";
import { expectCode } from "../helpers/expect.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
let admin: Client<typeof AdminSizeImageConstraintService>;
let api: Client<typeof SizeImageConstraintService>;

async function all(): Promise<SizeImageConstraint[]> {
  return (await admin.list({ paging: { limit: 1000 } })).sizeImageConstraints;
}

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  const transport = createRouterTransport((router) => {
    router.service(AdminImageService, createAdminImageService({ db }));
    router.service(AdminSizeImageConstraintService, createAdminSizeImageConstraintService({ db }));
    router.service(SizeImageConstraintService, createSizeImageConstraintService({ db }));
  });
  admin = createClient(AdminSizeImageConstraintService, transport);
  api = createClient(SizeImageConstraintService, transport);
  const images = createClient(AdminImageService, transport);
  for (const id of ["debian-12.0.20241201", "debian-12.1.20240601", "debian-13", "ubuntu-20.04.20240801", "ubuntu-22.04.20250101", "alpine-3.20.1"]) {
    await images.create({ id, url: `https://images.example/${id}`, features: [ImageFeature.MACHINE] });
  }
});

describe("size-image constraints", () => {
  it("are created, read, updated with optimistic locking and deleted", async () => {
    // The size is an id only: it need not exist.
    const { sizeImageConstraint: c } = await admin.create({ size: "c1-large", images: { debian: ">= 12.1", ubuntu: "*" } });
    expect(c).toMatchObject({ size: "c1-large", images: { debian: ">= 12.1", ubuntu: "*" } });
    expect(c!.meta!.version).toBe(1n);
    expect((await admin.get({ size: "c1-large" })).sizeImageConstraint).toEqual(c);
    await expectCode(admin.create({ size: "c1-large", images: { debian: "*" } }), Code.AlreadyExists, 'size image constraint "c1-large" already exists');

    const { sizeImageConstraint: up } = await admin.update({ size: "c1-large", version: 1n, images: { debian: ">= 12" } });
    expect(up).toMatchObject({ images: { debian: ">= 12" } });
    expect(up!.meta!.version).toBe(2n);
    await expectCode(admin.update({ size: "c1-large", version: 1n, images: { debian: "< 12" } }), Code.Aborted, "was changed by someone else");
    expect((await admin.get({ size: "c1-large" })).sizeImageConstraint).toEqual(up);

    expect((await admin.delete({ size: "c1-large" })).sizeImageConstraint).toEqual(up);
    await expectCode(admin.get({ size: "c1-large" }), Code.NotFound, 'size image constraint "c1-large" not found');
    await expectCode(admin.delete({ size: "c1-large" }), Code.NotFound);
    await expectCode(admin.update({ size: "c1-large", version: 2n, images: { debian: "*" } }), Code.NotFound);
  });

  it("page through the list ordered by size", async () => {
    const sizes = ["p-a", "p-b", "p-c", "p-d", "p-e"];
    for (const size of [...sizes].reverse()) await admin.create({ size, images: { debian: "*" } });
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await admin.list({ paging: { limit: 2, pageToken } });
      seen.push(...page.sizeImageConstraints.map((c) => c.size));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen.filter((s) => s.startsWith("p-"))).toEqual(sizes);
    for (const size of sizes) await admin.delete({ size });
  });

  it.each<[string, { size: string; images: Record<string, string> }, string]>([
    ["no size", { size: "", images: { debian: "*" } }, "size: is required"],
    ["a size that is no id", { size: "C1 Large", images: { debian: "*" } }, "size:"],
    ["no images", { size: "s1", images: {} }, "images: at least one OS is required"],
    ["* as OS", { size: "s1", images: { "*": "*" } }, 'images["*"]: the OS cannot be "*"'],
    ["an uppercase OS", { size: "s1", images: { Debian: "*" } }, 'images["Debian"]: the OS must be lowercase'],
    ["a range that does not parse", { size: "s1", images: { debian: "twelve" } }, 'images["debian"]: "twelve" is not a semver range'],
    ["an empty range", { size: "s1", images: { debian: "" } }, 'images["debian"]'],
    ["65 OSes", { size: "s1", images: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`os${i}`, "*"])) }, "images: must have at most 64 entries"],
  ])("refuse %s and store nothing", async (_n, req, message) => {
    const before = await all();
    await expectCode(admin.create(req), Code.InvalidArgument, message);
    expect(await all()).toEqual(before);
  });

  it("refuse invalid updates and change nothing", async () => {
    const { sizeImageConstraint: c } = await admin.create({ size: "upd", images: { debian: "*" } });
    await expectCode(admin.update({ size: "upd", version: 0n, images: { debian: "*" } }), Code.InvalidArgument, "version: is required");
    await expectCode(admin.update({ size: "upd", version: 1n, images: { debian: "twelve" } }), Code.InvalidArgument, 'images["debian"]');
    await expectCode(admin.update({ size: "upd", version: 1n, images: {} }), Code.InvalidArgument, "images: at least one OS");
    expect((await admin.get({ size: "upd" })).sizeImageConstraint).toEqual(c);
    await admin.delete({ size: "upd" });
  });
});

describe("Try", () => {
  beforeAll(async () => {
    await admin.create({ size: "s-try", images: { debian: ">= 12.1", ubuntu: ">= 22.04", alpine: "*" } });
  });

  it.each<[string, string, string, boolean]>([
    ["a size without constraint", "s-free", "debian-12.0.20241201", false],
    ["an OS the constraint does not name", "s-free", "ubuntu-20.04", false],
    ["a version in the range", "s-try", "debian-12.1.20240601", true],
    ["a short id resolving to a version in the range", "s-try", "debian-12", true],
    ["a range with leading zeros", "s-try", "ubuntu-22.04", true],
    ["* as range", "s-try", "alpine", true],
  ])("allows %s", async (_n, size, image, constrained) => {
    for (const client of [api, admin]) {
      const res = await client.try({ size, image });
      expect(res.constrained).toBe(constrained);
      expect(res.image).toMatch(new RegExp(`^${image.replace(/\./g, "\\.")}`));
    }
  });

  it.each<[string, string, string]>([
    ["a version outside the range", "debian-12.0", 'size "s-try" allows debian only in versions ">= 12.1"; "debian-12.0.20241201" is not one of them'],
    ["an old ubuntu", "ubuntu-20.04.20240801", 'allows ubuntu only in versions ">= 22.04"'],
    ["a version without patch part", "debian-13", 'image "debian-13" has no patch version'],
  ])("refuses %s with FailedPrecondition", async (_n, image, message) => {
    for (const client of [api, admin]) await expectCode(client.try({ size: "s-try", image }), Code.FailedPrecondition, message);
  });

  it("answers NotFound for unknown images and InvalidArgument for bad input", async () => {
    await expectCode(api.try({ size: "s-try", image: "fedora-40" }), Code.NotFound, 'image "fedora-40" not found');
    await expectCode(api.try({ size: "", image: "debian" }), Code.InvalidArgument, "size: is required");
    await expectCode(api.try({ size: "s-try", image: "Debian 12" }), Code.InvalidArgument, "image:");
    await expectCode(admin.try({ size: "s-try", image: "" }), Code.InvalidArgument, "image: is required");
  });
});
