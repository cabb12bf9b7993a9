import semver from "semver";

/** An image id split into its OS and version. */
export interface ImageName {
  os: string;
  version: string;
  /** The version's numbers, e.g. [12, 0, 20241201]. */
  parts: number[];
}

const VERSION = /^\d{1,10}(\.\d{1,10}){0,2}$/;

/**
 * Splits `<os>-<version>`: the OS is everything before the last "-" (so
 * "ubuntu-small-19.04.20200408" is OS "ubuntu-small"), the version one to
 * three dot-separated numbers. Returns an error message for anything else.
 */
export function parseImageId(id: string): ImageName | string {
  const dash = id.lastIndexOf("-");
  if (dash <= 0) return `"${id}" must be <os>-<version>, e.g. debian-12.0.20241201`;
  const os = id.slice(0, dash);
  const version = id.slice(dash + 1);
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(os)) return `OS "${os}" must be lowercase letters, digits and '-'`;
  if (!VERSION.test(version)) return `version "${version}" must be one to three dot-separated numbers`;
  return { os, version, parts: version.split(".").map(Number) };
}

/** Orders versions number by number; a shorter version sorts before its extensions. */
export function compareParts(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * What a short image reference asks for: "debian" (any version),
 * "debian-12" (12.x.y), "debian-12.0" (12.0.y) or a full id (exact).
 */
export function parseImageQuery(query: string): { os: string; prefix: number[] } {
  const parsed = parseImageId(query);
  if (typeof parsed === "string") return { os: query, prefix: [] };
  return { os: parsed.os, prefix: parsed.parts };
}

export interface ResolvableImage {
  id: string;
  os: string;
  version: string;
  features: number[];
  expiresAt: Date;
}

/**
 * The newest unexpired image matching a reference (and a feature, if given);
 * undefined when there is none.
 */
export function resolveImage<T extends ResolvableImage>(images: readonly T[], query: string, opts: { feature?: number; now?: Date } = {}): T | undefined {
  const { os, prefix } = parseImageQuery(query);
  const now = opts.now ?? new Date();
  let best: { image: T; parts: number[] } | undefined;
  for (const image of images) {
    if (image.os !== os || image.expiresAt <= now) continue;
    if (opts.feature !== undefined && !image.features.includes(opts.feature)) continue;
    const parts = image.version.split(".").map(Number);
    if (prefix.some((p, i) => parts[i] !== p)) continue;
    if (!best || compareParts(parts, best.parts) > 0) best = { image, parts };
  }
  return best?.image;
}

/** The version as semver ("19.04.1" -> "19.4.1"), or undefined when it has no patch part. */
export function semverOf(version: string): string | undefined {
  const parts = version.split(".").map(Number);
  if (parts.length !== 3 || parts.some((n) => !Number.isSafeInteger(n))) return undefined;
  return parts.join(".");
}

/** Whether `range` is a semver range this server understands ("*" included). */
export function isValidRange(range: string): boolean {
  return range.trim() !== "" && semver.validRange(range) !== null;
}

/** Whether a version satisfies a range; versions without a patch part never do. */
export function versionSatisfies(version: string, range: string): boolean {
  const v = semverOf(version);
  return v !== undefined && semver.satisfies(v, range);
}

/** Whether two ranges have a version in common. */
export function rangesIntersect(a: string, b: string): boolean {
  return semver.intersects(a, b);
}
