import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAB } from "../../edge/lab/seed.js";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { type LabUnderTest, startLabUnderTest } from "./lab-harness.js";

// The lab's images carry their checksum in the contract (issue 17), the digest of the file the lab serves.
let t: LabUnderTest;

beforeAll(async () => {
  t = await startLabUnderTest(1);
});

afterAll(async () => {
  await t?.dispose();
});

describe("metal-lab's images", () => {
  it.each([LAB.machineImage, LAB.firewallImage])("%s carries the SHA-256 of the file at its url", async (id) => {
    const image = (await t.admin(ImageService).get({ id })).image!;
    const res = await fetch(image.url);
    expect(res.status).toBe(200);
    const digest = createHash("sha256")
      .update(Buffer.from(await res.arrayBuffer()))
      .digest("hex");
    expect(image.sha256).toBe(digest);
  });
});
