import { describe, expect, it } from "vitest";
import { imageRangeProblems, imageRefusal } from "../../../server/domain/size-image-constraint.js";

describe("size-image constraint ranges", () => {
  it.each<[Record<string, string>, string[]]>([
    [{ debian: ">= 12.1" }, []],
    [{ debian: "*", ubuntu: ">= 20.04", "ubuntu-small": "~19.04" }, []],
    [{ "*": "*" }, ['images["*"]: the OS cannot be "*"']],
    [{ Debian: "*" }, ['images["Debian"]: the OS must be lowercase']],
    [{ debian: "twelve" }, ['images["debian"]: "twelve" is not a semver range']],
    [{ debian: "" }, ['images["debian"]: "" is not a semver range']],
    [Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`os${i}`, "*"])), ["images: must have at most 64 entries"]],
  ])("%j -> %j", (images, expected) => {
    const got = imageRangeProblems("images", images).map((p) => `${p.path}: ${p.message}`);
    expect(got).toHaveLength(expected.length);
    expected.forEach((e, i) => expect(got[i]).toContain(e));
  });
});

describe("whether an image may run on a size", () => {
  const c = { debian: ">= 12.1", ubuntu: "~20.04", alpine: "*" };
  const image = (id: string) => {
    const dash = id.lastIndexOf("-");
    return { id, os: id.slice(0, dash), version: id.slice(dash + 1) };
  };
  it.each<[string, string | undefined]>([
    ["debian-12.1.5", undefined],
    ["debian-13.0.20250601", undefined],
    ["debian-12.0.20241201", 'size "s1" allows debian only in versions ">= 12.1"'],
    ["debian-12.1", "has no patch version"],
    ["ubuntu-20.04.20240801", undefined],
    ["ubuntu-22.04.1", "allows ubuntu only"],
    ["alpine-3.20.1", undefined],
    ["alpine-3", "has no patch version"],
    ["centos-7", undefined],
  ])("%s: %s", (id, refusal) => {
    const why = imageRefusal("s1", c, image(id));
    if (refusal === undefined) expect(why).toBeUndefined();
    else expect(why).toContain(refusal);
  });
});
