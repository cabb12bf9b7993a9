import { type Client, Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { ImageService as AdminImageService } from "../../gen/metal/admin/v1/image_pb.js";
import { ImageFeature, ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { createAdminImageService } from "../../server/services/admin/image-service.js";
import { createImageService } from "../../server/services/api/image-service.js";
import { expectCode } from "../helpers/expect.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

// The image contract carries the file's SHA-256 (issue 17): stored lowercase, empty = unknown.
let admin: Client<typeof AdminImageService>;
let api: Client<typeof ImageService>;

const DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
const img = (id: string, sha256?: string) => ({ id, url: `https://images.example/${id}.img`, features: [ImageFeature.MACHINE], sha256 });

beforeAll(async () => {
  const { db } = await useMetalDatabase();
  const transport = createRouterTransport((router) => {
    router.service(AdminImageService, createAdminImageService({ db }));
    router.service(ImageService, createImageService({ db }));
  });
  admin = createClient(AdminImageService, transport);
  api = createClient(ImageService, transport);
});

describe("an image's sha256", () => {
  it("round-trips through create and get, an uppercase digest stored lowercase", async () => {
    const { image } = await admin.create(img("debian-12.0.1", DIGEST.toUpperCase()));
    expect(image?.sha256).toBe(DIGEST);
    expect((await api.get({ id: "debian-12.0.1" })).image?.sha256).toBe(DIGEST);
    expect((await api.list({})).images.find((i) => i.id === "debian-12.0.1")?.sha256).toBe(DIGEST);
  });

  it("is empty when the create request names none", async () => {
    await admin.create(img("debian-12.0.2"));
    expect((await api.get({ id: "debian-12.0.2" })).image?.sha256).toBe("");
  });

  it("an update keeps it unless given (also when the url changes), replaces it when given, clears it with an empty one", async () => {
    const created = (await admin.create(img("debian-12.0.3", DIGEST))).image!;
    const renamed = (await admin.update({ id: created.id, version: created.meta!.version, name: "renamed", url: "https://mirror.example/debian.img" })).image!;
    expect(renamed).toMatchObject({ name: "renamed", url: "https://mirror.example/debian.img", sha256: DIGEST });
    const replaced = (await admin.update({ id: created.id, version: renamed.meta!.version, sha256: OTHER.toUpperCase() })).image!;
    expect(replaced.sha256).toBe(OTHER);
    expect((await api.get({ id: created.id })).image?.sha256).toBe(OTHER);
    const cleared = (await admin.update({ id: created.id, version: replaced.meta!.version, sha256: "" })).image!;
    expect(cleared.sha256).toBe("");
    expect((await api.get({ id: created.id })).image?.sha256).toBe("");
  });

  it.each([
    ["63 hex digits", DIGEST.slice(1)],
    ["65 hex digits", `${DIGEST}0`],
    ["a non-hex digit", `${DIGEST.slice(1)}g`],
    ["sha256sum's line with a file name", `${DIGEST}  debian.img`],
    ["a prefixed digest", `sha256:${DIGEST}`],
  ])("refuses %s on create and stores nothing", async (_name, sha256) => {
    await expectCode(admin.create(img("debian-13.0.1", sha256)), Code.InvalidArgument, "sha256: ");
    await expectCode(api.get({ id: "debian-13.0.1" }), Code.NotFound);
  });

  it("refuses a bad digest on update and changes nothing", async () => {
    const created = (await admin.create(img("debian-12.0.4", DIGEST))).image!;
    await expectCode(admin.update({ id: created.id, version: created.meta!.version, sha256: "abc", name: "changed" }), Code.InvalidArgument, 'sha256: "abc" must be empty or a SHA-256 digest');
    const now = (await api.get({ id: created.id })).image!;
    expect(now).toMatchObject({ sha256: DIGEST, name: "" });
    expect(now.meta!.version).toBe(created.meta!.version);
  });
});
