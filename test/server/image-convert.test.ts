import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ImageServiceCreateRequestSchema, ImageServiceUpdateRequestSchema } from "../../gen/metal/admin/v1/image_pb.js";
import { ImageClassification, ImageFeature } from "../../gen/metal/api/v1/image_pb.js";
import { imagePatchFromUpdate, imageRowFromCreate, toProtoImage } from "../../server/convert/image.js";
import type { ImageRow } from "../../server/db/schema/index.js";
import { parseImageId } from "../../server/domain/image-version.js";

const DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

describe("image conversion of sha256", () => {
  it("a create request's digest becomes the row's, lowercase; none becomes empty", () => {
    const name = parseImageId("debian-12.0.1");
    if (typeof name === "string") throw new Error(name);
    const req = (sha256: string) => create(ImageServiceCreateRequestSchema, { id: "debian-12.0.1", url: "https://images.example/d.img", features: [ImageFeature.MACHINE], sha256 });
    expect(imageRowFromCreate(req(DIGEST.toUpperCase()), name).sha256).toBe(DIGEST);
    expect(imageRowFromCreate(req(""), name).sha256).toBe("");
  });

  it("an update patch has sha256 only when the request sets it (empty clears), lowercase", () => {
    const patch = (init: { sha256?: string }) => imagePatchFromUpdate(create(ImageServiceUpdateRequestSchema, { id: "debian-12.0.1", version: 1n, ...init }));
    expect(patch({})).not.toHaveProperty("sha256");
    expect(patch({ sha256: DIGEST.toUpperCase() })).toEqual({ sha256: DIGEST });
    expect(patch({ sha256: "" })).toEqual({ sha256: "" });
  });

  it("a row's digest reaches the contract's Image", () => {
    const now = new Date();
    const row: ImageRow = {
      id: "debian-12.0.1",
      name: "",
      description: "",
      url: "https://images.example/d.img",
      sha256: DIGEST,
      features: [ImageFeature.MACHINE],
      os: "debian",
      osVersion: "12.0.1",
      versionKey: "12.0.1",
      classification: ImageClassification.PREVIEW,
      expiresAt: now,
      labels: {},
      createdAt: now,
      updatedAt: now,
      version: 1,
    };
    expect(toProtoImage(row).sha256).toBe(DIGEST);
  });
});
