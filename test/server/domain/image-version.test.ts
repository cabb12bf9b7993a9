import { describe, expect, it } from "vitest";
import { candidateOses, parseImageId, parseImageRef, type ResolvableImage, resolveImage } from "../../../server/domain/image-version.js";

describe("image ids", () => {
  it.each([
    ["debian-12.0.20241201", "debian", "12.0.20241201"],
    ["ubuntu-small-19.04.20200408", "ubuntu-small", "19.04.20200408"],
    ["firewall-ubuntu-3.0", "firewall-ubuntu", "3.0"],
    ["centos-7", "centos", "7"],
    ["os2-1.0.0", "os2", "1.0.0"],
  ])("splits %s into OS %s and version %s", (id, os, version) => {
    expect(parseImageId(id)).toEqual({ os, version });
  });

  it.each([
    ["debian", "must be <os>-<version>"],
    ["debian-", "version"],
    ["-12", "must be <os>-<version>"],
    ["Debian-12", "OS"],
    ["debian_x-12", "OS"],
    ["debian--12", "OS"],
    ["debian-12.0.1.2", "version"],
    ["debian-x.y", "version"],
    ["debian-12.0.1-rc1", 'OS "debian-12.0.1"'],
    ["debian-v12", "version"],
    [`${"a".repeat(130)}-1.0.0`, "at most 128"],
  ])("refuses %s (%s)", (id, message) => {
    const parsed = parseImageId(id);
    expect(typeof parsed).toBe("string");
    expect(parsed).toContain(message);
  });
});

describe("image references", () => {
  it.each([
    ["debian", [{ os: "debian", prefix: [] }]],
    [
      "debian-12",
      [
        { os: "debian", prefix: [12] },
        { os: "debian-12", prefix: [] },
      ],
    ],
    ["debian-12.0", [{ os: "debian", prefix: [12, 0] }]],
    ["debian-12.0.20241201", [{ os: "debian", prefix: [12, 0, 20241201] }]],
    ["ubuntu-small", [{ os: "ubuntu-small", prefix: [] }]],
    ["ubuntu-small-19.04", [{ os: "ubuntu-small", prefix: [19, 4] }]],
  ])("reads %s", (ref, readings) => {
    expect(parseImageRef(ref)).toEqual(readings);
  });

  it.each(["", "Debian", "debian 12", "debian-12.0.1.2", "../etc"])("refuses %j", (ref) => {
    expect(typeof parseImageRef(ref)).toBe("string");
    expect(candidateOses(ref)).toEqual([]);
  });
});

describe("resolution", () => {
  const now = new Date("2026-01-01T00:00:00Z");
  const future = new Date("2027-01-01T00:00:00Z");
  const past = new Date("2025-12-31T23:00:00Z");
  const img = (id: string, features = [1], expiresAt = future): ResolvableImage => {
    const p = parseImageId(id) as { os: string; version: string };
    return { id, os: p.os, version: p.version, features, expiresAt };
  };
  const all = [
    img("debian-11.0.20230101"),
    img("debian-12.0.20240101"),
    img("debian-12.0.20241201"),
    img("debian-12.1.20240601"),
    img("debian-12.10.1", [1], past),
    img("debian-12.2.20250101", [2]),
    img("debian-13.0.20250601", [1], past),
    img("debian-small-12.9.1"),
    img("ubuntu-19.04.20200408"),
    img("ubuntu-19.10.20200101"),
    img("ubuntu-20.04.20240801"),
    img("centos-7-1.0.0"),
  ];

  it.each<[string, string | undefined, number | undefined]>([
    ["debian", "debian-12.2.20250101", undefined],
    ["debian", "debian-12.1.20240601", 1],
    ["debian", "debian-12.2.20250101", 2],
    ["debian-12", "debian-12.2.20250101", undefined],
    ["debian-12", "debian-12.1.20240601", 1],
    ["debian-12.0", "debian-12.0.20241201", undefined],
    ["debian-12.0.20240101", "debian-12.0.20240101", undefined],
    ["debian-11", "debian-11.0.20230101", undefined],
    ["debian-small", "debian-small-12.9.1", undefined],
    ["ubuntu-19.04", "ubuntu-19.04.20200408", undefined],
    ["ubuntu-19.4", "ubuntu-19.04.20200408", undefined],
    ["ubuntu-19", "ubuntu-19.10.20200101", undefined],
    ["ubuntu", "ubuntu-20.04.20240801", undefined],
    ["centos-7", "centos-7-1.0.0", undefined],
    // Nothing: expired only, unknown OS, no such version, no image with the feature.
    ["debian-13", undefined, undefined],
    ["debian-12.10", undefined, undefined],
    ["debian-12.3", undefined, undefined],
    ["fedora", undefined, undefined],
    ["ubuntu", undefined, 2],
    ["Debian", undefined, undefined],
  ])("%s -> %s (feature %s)", (ref, expected, feature) => {
    expect(resolveImage(all, ref, { feature, now })?.id).toBe(expected);
  });

  it("returns expired images when asked to", () => {
    expect(resolveImage(all, "debian-13", { now, includeExpired: true })?.id).toBe("debian-13.0.20250601");
    expect(resolveImage(all, "debian", { now, includeExpired: true })?.id).toBe("debian-13.0.20250601");
  });

  it("does not depend on the order of the candidates", () => {
    const twins = [img("ubuntu-19.4.1"), img("ubuntu-19.04.1"), img("ubuntu-19.004.1")];
    const ids = new Set([twins, [...twins].reverse(), [twins[1]!, twins[2]!, twins[0]!]].map((c) => resolveImage(c, "ubuntu", { now })?.id));
    expect(ids.size).toBe(1);
  });

  it("names the OSes to load for a reference", () => {
    expect(candidateOses("debian-12")).toEqual(["debian", "debian-12"]);
    expect(candidateOses("ubuntu-small")).toEqual(["ubuntu-small"]);
  });
});
