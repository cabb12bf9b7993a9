import { describe, expect, it } from "vitest";
import { parseImageId, resolveImage, semverOf } from "../../../server/domain/image-version.js";
import { imageRefusal, imageRangeProblems } from "../../../server/domain/size-image-constraint.js";

describe("image ids", () => {
  it.each([
    ["debian-12.0.20241201", "debian", "12.0.20241201"],
    ["ubuntu-small-19.04.20200408", "ubuntu-small", "19.04.20200408"],
    ["firewall-ubuntu-3.0", "firewall-ubuntu", "3.0"],
    ["centos-7", "centos", "7"],
  ])("splits %s", (id, os, version) => {
    expect(parseImageId(id)).toMatchObject({ os, version });
  });

  it.each(["debian", "debian-", "-12", "Debian-12", "debian-12.0.1.2", "debian-x.y", "debian-12.0.1-rc1"])("refuses %s", (id) => {
    expect(typeof parseImageId(id)).toBe("string");
  });

  it("reads versions with leading zeros as semver", () => {
    expect(semverOf("19.04.20200408")).toBe("19.4.20200408");
    expect(semverOf("12.0")).toBeUndefined();
  });
});

describe("resolution", () => {
  const future = new Date(Date.now() + 86_400_000);
  const img = (id: string, features = [1], expiresAt = future) => {
    const p = parseImageId(id) as { os: string; version: string };
    return { id, os: p.os, version: p.version, features, expiresAt };
  };
  const all = [
    img("debian-11.0.20230101"),
    img("debian-12.0.20240101"),
    img("debian-12.0.20241201"),
    img("debian-12.1.20240601"),
    img("debian-12.2.20250101", [2]),
    img("debian-13.0.20250601", [1], new Date(Date.now() - 1000)),
    img("debian-small-12.9.1"),
  ];
  it.each([
    ["debian", "debian-12.2.20250101", undefined],
    ["debian", "debian-12.1.20240601", 1],
    ["debian-12", "debian-12.2.20250101", undefined],
    ["debian-12.0", "debian-12.0.20241201", undefined],
    ["debian-12.0.20240101", "debian-12.0.20240101", undefined],
    ["debian-11", "debian-11.0.20230101", undefined],
    ["debian-small", "debian-small-12.9.1", undefined],
  ])("%s -> %s (feature %s)", (query, expected, feature) => {
    expect(resolveImage(all, query, { feature })?.id).toBe(expected);
  });

  it("finds nothing for expired, unknown or unmatched references", () => {
    expect(resolveImage(all, "debian-13")).toBeUndefined();
    expect(resolveImage(all, "ubuntu")).toBeUndefined();
    expect(resolveImage(all, "debian-12.3")).toBeUndefined();
  });
});

describe("size-image constraints", () => {
  it("checks only the named OS, needs a patch part and the range", () => {
    const c = { debian: ">= 12.1" };
    expect(imageRefusal("s", c, { id: "ubuntu-20.04.1", os: "ubuntu", version: "20.04.1" })).toBeUndefined();
    expect(imageRefusal("s", c, { id: "debian-12.1.5", os: "debian", version: "12.1.5" })).toBeUndefined();
    expect(imageRefusal("s", c, { id: "debian-12.0.5", os: "debian", version: "12.0.5" })).toContain('allows debian only in versions ">= 12.1"');
    expect(imageRefusal("s", c, { id: "debian-12.1", os: "debian", version: "12.1" })).toContain("no patch version");
    expect(imageRefusal("s", { debian: "*" }, { id: "debian-12.0.1", os: "debian", version: "12.0.1" })).toBeUndefined();
  });

  it("refuses '*' as OS and ranges that do not parse", () => {
    expect(imageRangeProblems("images", { "*": "*" }).map((p) => p.message).join()).toContain('cannot be "*"');
    expect(imageRangeProblems("images", { debian: "not a range" })).toHaveLength(1);
    expect(imageRangeProblems("images", { debian: ">=12 <13" })).toEqual([]);
  });
});
