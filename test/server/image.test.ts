import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { FilesystemLayoutService as AdminFilesystemLayoutService } from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImageService, type ImageServiceCreateRequestSchema } from "../../gen/metal/admin/v1/image_pb.js";
import { SizeImageConstraintService as AdminSizeImageConstraintService } from "../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { AdminRole, Visibility } from "../../gen/metal/api/v1/common_pb.js";
import { FilesystemLayoutService } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { type Image, ImageClassification, ImageFeature, ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { SizeImageConstraintService } from "../../gen/metal/api/v1/size_image_constraint_pb.js";
import { permissionOf } from "../../server/auth/permissions.js";
import type { DbHandle } from "../../server/db/handle.js";
import { createAdminImageService } from "../../server/services/admin/image-service.js";
import { createImageService } from "../../server/services/api/image-service.js";
import { expectCode } from "../helpers/expect.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
let admin: Client<typeof AdminImageService>;
let api: Client<typeof ImageService>;

type CreateInit = MessageInitShape<typeof ImageServiceCreateRequestSchema>;
type CreateFields = Omit<CreateInit, "$typeName" | "$unknown">;
const img = (id: string, extra: Partial<CreateFields> = {}): CreateInit => ({
  id,
  url: `https://images.example/${id}.tar.lz4`,
  features: [ImageFeature.MACHINE],
  ...extra,
});
/** An enum number the schema does not know, as a hostile client would send it. */
const unknown = <T>(n: number) => n as unknown as T;
const DAY = 86_400_000;
const expired = () => timestampFromDate(new Date(Date.now() - 60_000));

/** Every image, read page by page through the admin list. */
async function allImages(): Promise<Image[]> {
  const out: Image[] = [];
  let pageToken = "";
  do {
    const page = await admin.list({ paging: { limit: 1000, pageToken } });
    out.push(...page.images);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return out;
}

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  const transport = createRouterTransport((router) => {
    router.service(AdminImageService, createAdminImageService({ db }));
    router.service(ImageService, createImageService({ db }));
  });
  admin = createClient(AdminImageService, transport);
  api = createClient(ImageService, transport);
  for (const id of ["debian-11.0.20230101", "debian-12.0.20240101", "debian-12.0.20241201", "debian-12.1.20240601", "ubuntu-20.04.20240801", "ubuntu-small-19.04.20200408"]) {
    await admin.create(img(id));
  }
  await admin.create(img("debian-12.2.20250101", { features: [ImageFeature.FIREWALL], classification: ImageClassification.SUPPORTED }));
  await admin.create(img("debian-13.0.20250601", { expiresAt: expired() }));
  await admin.create(img("firewall-ubuntu-3.0.20240101", { features: [ImageFeature.FIREWALL, ImageFeature.MACHINE], classification: ImageClassification.DEPRECATED }));
});

describe("creating images", () => {
  it("stores OS and version, defaults classification to preview and expiry to 90 days", async () => {
    const { image } = await api.get({ id: "ubuntu-small-19.04.20200408" });
    expect(image).toMatchObject({ os: "ubuntu-small", version: "19.04.20200408", classification: ImageClassification.PREVIEW, features: [ImageFeature.MACHINE] });
    const days = (timestampDate(image!.expiresAt!).getTime() - Date.now()) / DAY;
    expect(days).toBeGreaterThan(89.9);
    expect(days).toBeLessThanOrEqual(90);
    expect(image!.meta!.version).toBe(1n);
  });

  it("keeps a given classification and expiry, and stores features sorted", async () => {
    const at = new Date(Date.now() + 7 * DAY);
    const { image } = await admin.create(img("alpine-3.20.1", { classification: ImageClassification.SUPPORTED, expiresAt: timestampFromDate(at), labels: { a: "b" }, name: "Alpine", description: "small" }));
    expect(image).toMatchObject({ classification: ImageClassification.SUPPORTED, labels: { a: "b" }, name: "Alpine", description: "small" });
    expect(timestampDate(image!.expiresAt!).getTime()).toBe(at.getTime());
    const fw = await api.get({ id: "firewall-ubuntu-3.0.20240101" });
    expect(fw.image?.features).toEqual([ImageFeature.MACHINE, ImageFeature.FIREWALL]);
  });

  it("refuses an id that is taken, and a version that differs only by leading zeros", async () => {
    await expectCode(admin.create(img("debian-12.0.20240101")), Code.AlreadyExists, 'image "debian-12.0.20240101" already exists');
    await expectCode(admin.create(img("ubuntu-small-19.4.20200408")), Code.AlreadyExists, "ubuntu-small already has an image of version 19.4.20200408");
    expect((await allImages()).map((i) => i.id)).not.toContain("ubuntu-small-19.4.20200408");
  });

  it.each<[string, CreateInit, string]>([
    ["no id", img(""), "id: is required"],
    ["no version", img("debian"), 'id: "debian" must be <os>-<version>'],
    ["an uppercase OS", img("Debian-12.0.1"), 'id: OS "Debian"'],
    ["a four-part version", img("debian-1.2.3.4"), 'id: version "1.2.3.4"'],
    ["a pre-release version", img("debian-12.0.1-rc1"), "id:"],
    ["an overlong id", img(`${"d".repeat(130)}-1.0.0`), "id: must be at most 128 characters"],
    ["no url", img("debian-10.0.1", { url: "" }), "url: is required"],
    ["an ftp url", img("debian-10.0.2", { url: "ftp://images.example/x" }), 'url: "ftp://images.example/x" must be an http or https URL'],
    ["no url at all", img("debian-10.0.3", { url: "not a url" }), "url:"],
    ["no features", img("debian-10.0.4", { features: [] }), "features: at least one feature is required"],
    ["an unspecified feature", img("debian-10.0.5", { features: [ImageFeature.UNSPECIFIED] }), "features[0]: must be set"],
    ["an unknown feature", img("debian-10.0.6", { features: [unknown<ImageFeature>(7)] }), "features[0]: 7 is not a known value"],
    ["a feature twice", img("debian-10.0.10", { features: [ImageFeature.MACHINE, ImageFeature.MACHINE] }), "features[1]: is a duplicate"],
    ["an unknown classification", img("debian-10.0.7", { classification: unknown<ImageClassification>(9) }), "classification: 9 is not a known value"],
    ["a bad label key", img("debian-10.0.8", { labels: { "a b": "c" } }), 'labels["a b"]'],
    ["an overlong description", img("debian-10.0.9", { description: "x".repeat(1025) }), "description: must be at most 1024 characters"],
  ])("refuses %s and stores nothing", async (_name, req, message) => {
    const before = await allImages();
    await expectCode(admin.create(req), Code.InvalidArgument, message);
    expect(await allImages()).toEqual(before);
  });

  it("does not probe the URL: an unreachable image server is fine", async () => {
    const { image } = await admin.create(img("offline-1.0.0", { url: "http://127.0.0.1:1/never-there.img" }));
    expect(image?.url).toBe("http://127.0.0.1:1/never-there.img");
  });
});

describe("updating and deleting images", () => {
  it("changes only what is set, with optimistic locking", async () => {
    const { image } = await admin.create(img("rocky-9.4.1", { labels: { keep: "me" }, name: "Rocky" }));
    const v1 = image!.meta!.version;
    const at = new Date(Date.now() + 3 * DAY);
    const { image: up } = await admin.update({
      id: "rocky-9.4.1",
      version: v1,
      classification: ImageClassification.SUPPORTED,
      features: { values: [ImageFeature.FIREWALL] },
      url: "https://mirror.example/rocky.img",
      expiresAt: timestampFromDate(at),
    });
    expect(up).toMatchObject({
      name: "Rocky",
      labels: { keep: "me" },
      classification: ImageClassification.SUPPORTED,
      features: [ImageFeature.FIREWALL],
      url: "https://mirror.example/rocky.img",
      os: "rocky",
      version: "9.4.1",
    });
    expect(timestampDate(up!.expiresAt!).getTime()).toBe(at.getTime());
    expect(up!.meta!.version).toBe(v1 + 1n);

    // Unset labels keep them, empty labels clear them.
    const { image: named } = await admin.update({ id: "rocky-9.4.1", version: up!.meta!.version, description: "rocky linux" });
    expect(named?.labels).toEqual({ keep: "me" });
    const { image: cleared } = await admin.update({ id: "rocky-9.4.1", version: named!.meta!.version, labels: { values: {} } });
    expect(cleared?.labels).toEqual({});

    // A stale version changes nothing.
    await expectCode(admin.update({ id: "rocky-9.4.1", version: v1, name: "stale" }), Code.Aborted, "was changed by someone else");
    expect((await api.get({ id: "rocky-9.4.1" })).image).toEqual(cleared);
    await admin.delete({ id: "rocky-9.4.1" });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["no version", { version: 0n }, "version: is required"],
    ["empty features", { features: { values: [] } }, "features: at least one feature"],
    ["an empty url", { url: "" }, "url: is required"],
    ["a file url", { url: "file:///etc/passwd" }, "url:"],
    ["an unknown classification", { classification: 5 }, "classification"],
    ["a short id", { id: "rocky-9" }, ""],
  ])("refuses an update with %s and changes nothing", async (_n, patch, message) => {
    const before = (await api.get({ id: "debian-11.0.20230101" })).image!;
    const req = { id: "debian-11.0.20230101", version: before.meta!.version, ...patch };
    await expectCode(admin.update(req), patch.id ? Code.NotFound : Code.InvalidArgument, message);
    expect((await api.get({ id: "debian-11.0.20230101" })).image).toEqual(before);
  });

  it("answers NotFound for unknown images", async () => {
    await expectCode(admin.update({ id: "nope-1.0.0", version: 1n, name: "x" }), Code.NotFound, 'image "nope-1.0.0" not found');
    await expectCode(admin.delete({ id: "nope-1.0.0" }), Code.NotFound);
    await expectCode(admin.delete({ id: "not an id" }), Code.InvalidArgument, "id:");
  });

  it("deletes", async () => {
    await admin.create(img("gentoo-1.0.0"));
    const { image } = await admin.delete({ id: "gentoo-1.0.0" });
    expect(image?.id).toBe("gentoo-1.0.0");
    await expectCode(api.get({ id: "gentoo-1.0.0" }), Code.NotFound);
    await expectCode(admin.delete({ id: "gentoo-1.0.0" }), Code.NotFound);
  });
});

describe("reading images", () => {
  it.each([
    ["debian-12.0.20240101", "debian-12.0.20240101"],
    ["debian-12", "debian-12.2.20250101"],
    ["debian-12.0", "debian-12.0.20241201"],
    ["debian-11", "debian-11.0.20230101"],
    ["debian", "debian-12.2.20250101"],
    ["ubuntu-small-19.04", "ubuntu-small-19.04.20200408"],
    ["ubuntu-small-19.4", "ubuntu-small-19.04.20200408"],
    ["ubuntu-small", "ubuntu-small-19.04.20200408"],
    // A full id answers even an expired image.
    ["debian-13.0.20250601", "debian-13.0.20250601"],
  ])("Get %s -> %s", async (ref, id) => {
    expect((await api.get({ id: ref })).image?.id).toBe(id);
  });

  it("resolves short ids to unexpired images only", async () => {
    await expectCode(api.get({ id: "debian-13" }), Code.NotFound, 'image "debian-13" not found');
    await expectCode(api.get({ id: "debian-12.5" }), Code.NotFound);
    await expectCode(api.get({ id: "fedora" }), Code.NotFound);
    await expectCode(api.get({ id: "" }), Code.InvalidArgument, "id: is required");
    await expectCode(api.get({ id: "Debian 12" }), Code.InvalidArgument, "id:");
  });

  it.each<[string, ImageFeature, string]>([
    ["debian", ImageFeature.UNSPECIFIED, "debian-12.2.20250101"],
    ["debian", ImageFeature.MACHINE, "debian-12.1.20240601"],
    ["debian", ImageFeature.FIREWALL, "debian-12.2.20250101"],
    ["debian-12.0", ImageFeature.MACHINE, "debian-12.0.20241201"],
    ["debian-12", ImageFeature.MACHINE, "debian-12.1.20240601"],
    ["firewall-ubuntu", ImageFeature.FIREWALL, "firewall-ubuntu-3.0.20240101"],
    ["ubuntu", ImageFeature.MACHINE, "ubuntu-20.04.20240801"],
  ])("Latest %s with feature %s -> %s", async (os, feature, id) => {
    expect((await api.latest({ os, feature })).image?.id).toBe(id);
  });

  it("answers Latest NotFound or InvalidArgument", async () => {
    await expectCode(api.latest({ os: "ubuntu", feature: ImageFeature.FIREWALL }), Code.NotFound);
    await expectCode(api.latest({ os: "debian-13" }), Code.NotFound);
    await expectCode(api.latest({ os: "" }), Code.InvalidArgument, "os: is required");
    await expectCode(api.latest({ os: "debian", feature: unknown<ImageFeature>(9) }), Code.InvalidArgument, "feature: 9 is not a known value");
  });

  it("lists with filters", async () => {
    const ids = async (req: Parameters<typeof api.list>[0]) => (await api.list(req)).images.map((i) => i.id);
    expect(await ids({ feature: ImageFeature.FIREWALL })).toEqual(["debian-12.2.20250101", "firewall-ubuntu-3.0.20240101"]);
    expect(await ids({ os: "ubuntu" })).toEqual(["ubuntu-20.04.20240801"]);
    expect(await ids({ os: "debian", classification: ImageClassification.SUPPORTED })).toEqual(["debian-12.2.20250101"]);
    expect(await ids({ classification: ImageClassification.DEPRECATED })).toEqual(["firewall-ubuntu-3.0.20240101"]);
    expect(await ids({ os: "debian", feature: ImageFeature.FIREWALL, classification: ImageClassification.PREVIEW })).toEqual([]);
    await expectCode(api.list({ os: "Debian!" }), Code.InvalidArgument, "os:");
    await expectCode(api.list({ classification: unknown<ImageClassification>(8) }), Code.InvalidArgument, "classification");
  });

  it("pages through lists, also filtered", async () => {
    const all = (await allImages()).map((i) => i.id);
    expect(all).toEqual([...all].sort());
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await admin.list({ paging: { limit: 3, pageToken } });
      expect(page.images.length).toBeLessThanOrEqual(3);
      seen.push(...page.images.map((i) => i.id));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    expect(seen).toEqual(all);
    expect(pages).toBe(Math.ceil(all.length / 3));

    const debian: string[] = [];
    pageToken = "";
    do {
      const page = await api.list({ os: "debian", paging: { limit: 2, pageToken } });
      debian.push(...page.images.map((i) => i.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(debian).toEqual(all.filter((id) => id.startsWith("debian-")));

    await expectCode(admin.list({ paging: { limit: 1001 } }), Code.InvalidArgument, "paging.limit");
    await expectCode(admin.list({ paging: { pageToken: "garbage" } }), Code.InvalidArgument, "paging.page_token");
  });
});

describe("permissions", () => {
  it.each([
    [ImageService, { visibility: Visibility.AUTHENTICATED }],
    [SizeImageConstraintService, { visibility: Visibility.AUTHENTICATED }],
    [FilesystemLayoutService, { visibility: Visibility.AUTHENTICATED }],
  ])("%s is open to every authenticated caller", (service, expected) => {
    for (const m of service.methods) expect(permissionOf(m), m.name).toMatchObject({ ...expected, adminRole: AdminRole.UNSPECIFIED });
  });

  it.each([AdminImageService, AdminSizeImageConstraintService, AdminFilesystemLayoutService])("%s: reads for viewers, writes for admins", (service) => {
    for (const m of service.methods) {
      const read = ["Get", "List", "Try", "Match"].includes(m.name);
      expect(permissionOf(m), `${service.typeName}.${m.name}`).toMatchObject({ visibility: Visibility.UNSPECIFIED, adminRole: read ? AdminRole.VIEWER : AdminRole.ADMIN });
    }
  });
});
