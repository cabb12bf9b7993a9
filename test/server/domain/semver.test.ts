import { describe, expect, it } from "vitest";
import { compareVersions, hasVersionPrefix, isValidRange, isVersion, normalizeRange, normalizeVersion, rangesIntersect, satisfies, toSemver } from "../../../server/domain/semver.js";

describe("versions", () => {
  it.each([
    ["12", true],
    ["12.0", true],
    ["12.0.20241201", true],
    ["19.04.20200408", true],
    ["0.0.0", true],
    ["12.0.1.2", false],
    ["12.", false],
    [".12", false],
    ["v12", false],
    ["12.0.1-rc1", false],
    ["12.x", false],
    ["", false],
    ["12345678901", false],
  ])("isVersion(%j) = %s", (v, ok) => {
    expect(isVersion(v)).toBe(ok);
  });

  it.each([
    ["19.04.20200408", "19.4.20200408", "19.4.20200408"],
    ["12.0.20241201", "12.0.20241201", "12.0.20241201"],
    ["007.000.0010", "7.0.10", "7.0.10"],
    ["0.0.0", "0.0.0", "0.0.0"],
    ["20.04", "20.4", undefined],
    ["12", "12", undefined],
  ])("%s normalizes to %s, as semver %s", (v, normalized, sv) => {
    expect(normalizeVersion(v)).toBe(normalized);
    expect(toSemver(v)).toBe(sv);
  });

  it.each([
    ["12.0.1", "12.0.2", -1],
    ["12.1.0", "12.0.20241201", 1],
    ["19.04.1", "19.4.1", 0],
    ["19.10.1", "19.04.1", 1],
    ["12", "12.0", -1],
    ["12.0", "12.0.0", -1],
    ["9.9.9", "10.0.0", -1],
  ])("compare(%s, %s) has the sign %i", (a, b, sign) => {
    expect(Math.sign(compareVersions(a, b))).toBe(sign);
    expect(Math.sign(compareVersions(b, a))).toBe(-sign || 0);
  });

  it.each([
    ["12.0.20241201", [], true],
    ["12.0.20241201", [12], true],
    ["12.0.20241201", [12, 0], true],
    ["12.0.20241201", [12, 0, 20241201], true],
    ["12.10.1", [12, 1], false],
    ["19.04.1", [19, 4], true],
    ["12", [12, 0], false],
  ])("%s has prefix %j: %s", (v, prefix, ok) => {
    expect(hasVersionPrefix(v, prefix)).toBe(ok);
  });
});

describe("ranges", () => {
  it.each([
    ["*", true],
    [">= 12.1", true],
    [">= 20.04", true],
    ["~20.04", true],
    [">=12 <13", true],
    ["12.x", true],
    ["^1.2.3 || >= 3", true],
    ["twelve", false],
    ["", false],
    [" ", false],
    [">= 12.1 ||| x", false],
  ])("isValidRange(%j) = %s", (r, ok) => {
    expect(isValidRange(r)).toBe(ok);
  });

  it("drops leading zeros of numbers only", () => {
    expect(normalizeRange(">= 20.04")).toBe(">= 20.4");
    expect(normalizeRange("~19.04.0001")).toBe("~19.4.1");
    expect(normalizeRange(">=100.0 <200")).toBe(">=100.0 <200");
  });

  it.each([
    ["12.1.5", ">= 12.1", true],
    ["12.0.20241201", ">= 12.1", false],
    ["12.0.20241201", "*", true],
    ["20.04.20240801", ">= 20.04", true],
    ["20.04.20240801", "~20.4", true],
    ["19.10.1", "~19.04", false],
    ["12.1", ">= 12", false],
    ["12", "*", false],
    ["12.0.1", "nonsense", false],
  ])("%s satisfies %j: %s", (v, r, ok) => {
    expect(satisfies(v, r)).toBe(ok);
  });

  it.each([
    [">= 12", "< 13", true],
    [">= 12", "< 12", false],
    ["*", "~20.04", true],
    ["~20.04", "~22.04", false],
    ["12.x", "12.0.5", true],
    ["bad", "*", false],
  ])("%j and %j intersect: %s", (a, b, ok) => {
    expect(rangesIntersect(a, b)).toBe(ok);
    expect(rangesIntersect(b, a)).toBe(ok);
  });
});
