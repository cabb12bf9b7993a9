import semver from "semver";

/**
 * Semantic versions as image ids carry them. Distributions write versions with
 * leading zeros ("ubuntu-19.04.20200408", ranges like ">= 20.04"), which strict
 * semver refuses (and `semver.coerce` answers null for). Here a leading zero
 * is read as what it means numerically: 19.04 is 19.4, 007 is 7, 0 stays 0.
 */

const NUMBERS = /^\d{1,10}(\.\d{1,10}){0,2}$/;

/** One to three dot-separated numbers ("12", "12.0", "19.04.20200408"), the version part of an image id. */
export function isVersion(version: string): boolean {
  return NUMBERS.test(version);
}

/** The numbers of a version: "19.04.20200408" -> [19, 4, 20200408]. */
export function versionParts(version: string): number[] {
  return version.split(".").map(Number);
}

/** Leading zeros dropped from every number: "19.04.0020" -> "19.4.20"; "12.0" stays "12.0". */
export function normalizeVersion(version: string): string {
  return versionParts(version).join(".");
}

/** The version as strict semver ("19.04.1" -> "19.4.1"), or undefined when it has no patch part. */
export function toSemver(version: string): string | undefined {
  if (!isVersion(version)) return undefined;
  const parts = versionParts(version);
  return parts.length === 3 ? parts.join(".") : undefined;
}

/** Orders versions number by number; a shorter version sorts before its extensions ("12" < "12.0" < "12.0.0"). */
export function compareVersions(a: string, b: string): number {
  const x = versionParts(a);
  const y = versionParts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** Whether `prefix` ("12", "12.0") is the start of `version` ("12.0.20241201"), number by number. */
export function hasVersionPrefix(version: string, prefix: readonly number[]): boolean {
  const parts = versionParts(version);
  return prefix.every((p, i) => parts[i] === p);
}

/** A range with leading zeros of its numbers dropped (">= 20.04" -> ">= 20.4"), as the semver package reads ranges. */
export function normalizeRange(range: string): string {
  return range.replace(/\b0+(\d)/g, "$1");
}

/** Whether `range` is a semver range ("*", ">= 12.1", "~20.04", ">=12 <13"). */
export function isValidRange(range: string): boolean {
  return range.trim() !== "" && range.length <= 256 && semver.validRange(normalizeRange(range)) !== null;
}

/** Whether a version satisfies a range; versions without a patch part never do. */
export function satisfies(version: string, range: string): boolean {
  const v = toSemver(version);
  return v !== undefined && isValidRange(range) && semver.satisfies(v, normalizeRange(range));
}

/** Whether two ranges admit a common version. */
export function rangesIntersect(a: string, b: string): boolean {
  if (!isValidRange(a) || !isValidRange(b)) return false;
  return semver.intersects(normalizeRange(a), normalizeRange(b));
}
