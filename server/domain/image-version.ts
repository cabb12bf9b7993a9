import { compareVersions, hasVersionPrefix, isVersion, normalizeVersion, versionParts } from "./semver.js";

/** An image id split into its OS and version. */
export interface ImageName {
  os: string;
  /** The version as written in the id, e.g. "19.04.20200408". */
  version: string;
}

/** OS names: lowercase letters, digits and inner dashes ("debian", "ubuntu-small", "firewall-ubuntu"). */
const OS = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
export const MAX_IMAGE_ID_LENGTH = 128;

export function isImageOs(os: string): boolean {
  return OS.test(os) && os.length <= MAX_IMAGE_ID_LENGTH;
}

/**
 * Splits `<os>-<version>`: the OS is everything before the last "-" (so
 * "ubuntu-small-19.04.20200408" is OS "ubuntu-small", version
 * "19.04.20200408"), the version one to three dot-separated numbers.
 * Returns an error message for anything else.
 */
export function parseImageId(id: string): ImageName | string {
  if (id.length > MAX_IMAGE_ID_LENGTH) return `must be at most ${MAX_IMAGE_ID_LENGTH} characters`;
  const dash = id.lastIndexOf("-");
  if (dash <= 0) return `"${id}" must be <os>-<version>, e.g. debian-12.0.20241201`;
  const os = id.slice(0, dash);
  const version = id.slice(dash + 1);
  if (!isImageOs(os)) return `OS "${os}" must be lowercase letters, digits and '-'`;
  if (!isVersion(version)) return `version "${version}" must be one to three dot-separated numbers, e.g. 12.0.20241201`;
  return { os, version };
}

/** One way to read an image reference: an OS and the leading version numbers it asks for. */
export interface ImageRef {
  os: string;
  /** [] asks for any version, [12] for 12.x.y, [12, 0] for 12.0.y, three numbers for exactly that version. */
  prefix: number[];
}

/**
 * The readings of a reference: "debian-12.0" is OS debian, versions 12.0.*;
 * "debian" and "ubuntu-small" are an OS alone. A reference like "centos-7" is
 * read both ways (OS centos version 7.*, and an OS called "centos-7"), the
 * first reading preferred. Returns an error message when there is no reading.
 */
export function parseImageRef(ref: string): ImageRef[] | string {
  if (ref === "") return "is required";
  if (ref.length > MAX_IMAGE_ID_LENGTH) return `must be at most ${MAX_IMAGE_ID_LENGTH} characters`;
  const readings: ImageRef[] = [];
  const name = parseImageId(ref);
  if (typeof name !== "string") readings.push({ os: name.os, prefix: versionParts(name.version) });
  if (isImageOs(ref)) readings.push({ os: ref, prefix: [] });
  if (readings.length === 0) return `"${ref}" is neither an OS ("debian") nor an OS with a version ("debian-12", "debian-12.0", "debian-12.0.20241201")`;
  return readings;
}

export interface ResolvableImage {
  id: string;
  os: string;
  version: string;
  features: readonly number[];
  expiresAt: Date;
}

export interface ResolveOptions {
  /** Only images having this feature. */
  feature?: number;
  /** Expired images count too (an exact Get); by default they are skipped. */
  includeExpired?: boolean;
  now?: Date;
}

/**
 * The newest image a reference asks for: "debian" -> the newest debian,
 * "debian-12" -> the newest 12.x.y, "debian-12.0" -> the newest 12.0.y, a full
 * id -> that version; optionally only images with a feature, and skipping
 * expired ones. Equal versions written differently ("19.04" and "19.4") are
 * ordered by id, so the answer never depends on the order of `images`.
 * Undefined when nothing matches.
 */
export function resolveImage<T extends ResolvableImage>(images: readonly T[], ref: string, opts: ResolveOptions = {}): T | undefined {
  const readings = parseImageRef(ref);
  if (typeof readings === "string") return undefined;
  const now = opts.now ?? new Date();
  for (const { os, prefix } of readings) {
    let best: T | undefined;
    for (const image of images) {
      if (image.os !== os || !isVersion(image.version) || !hasVersionPrefix(image.version, prefix)) continue;
      if (!opts.includeExpired && image.expiresAt <= now) continue;
      if (opts.feature !== undefined && !image.features.includes(opts.feature)) continue;
      if (!best || newer(image, best)) best = image;
    }
    if (best) return best;
  }
  return undefined;
}

function newer(a: ResolvableImage, b: ResolvableImage): boolean {
  const d = compareVersions(a.version, b.version);
  return d > 0 || (d === 0 && a.id > b.id);
}

/** The OSes a reference may name; the images of these are the candidates for `resolveImage`. */
export function candidateOses(ref: string): string[] {
  const readings = parseImageRef(ref);
  return typeof readings === "string" ? [] : [...new Set(readings.map((r) => r.os))];
}

/** The version as stored for uniqueness: "19.04.1" and "19.4.1" are the same version of an OS. */
export const versionKey = normalizeVersion;
