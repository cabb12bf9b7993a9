import { isImageOs } from "./image-version.js";
import { isValidRange, satisfies, toSemver } from "./semver.js";

/** One problem of an input, at its field path. */
export interface Problem {
  path: string;
  message: string;
}

export const MAX_IMAGE_RANGES = 64;

/**
 * Problems of an OS -> semver range map (size-image constraints and the image
 * part of filesystem layout constraints). "*" is a range (every version), never
 * an OS: an OS must be named.
 */
export function imageRangeProblems(path: string, images: Record<string, string>): Problem[] {
  const problems: Problem[] = [];
  const entries = Object.entries(images);
  if (entries.length > MAX_IMAGE_RANGES) return [{ path, message: `must have at most ${MAX_IMAGE_RANGES} entries` }];
  for (const [os, range] of entries) {
    const p = `${path}["${os.slice(0, 64)}"]`;
    if (os === "*") problems.push({ path: p, message: 'the OS cannot be "*"; name each OS ("*" is allowed as the range)' });
    else if (!isImageOs(os)) problems.push({ path: p, message: "the OS must be lowercase letters, digits and '-'" });
    if (!isValidRange(range)) problems.push({ path: p, message: `"${range.slice(0, 64)}" is not a semver range (e.g. "*", ">= 12.1", "~20.04")` });
  }
  return problems;
}

/**
 * Why an image may not be installed on a size with these constraints, or
 * undefined when it may. Only OSes the constraint names are restricted; for
 * those the image version must have a patch part and satisfy the range.
 */
export function imageRefusal(sizeId: string, images: Record<string, string>, image: { id: string; os: string; version: string }): string | undefined {
  const range = images[image.os];
  if (range === undefined) return undefined;
  if (toSemver(image.version) === undefined) {
    return `image "${image.id}" has no patch version, which size "${sizeId}" needs to check it against "${range}"`;
  }
  if (!satisfies(image.version, range)) return `size "${sizeId}" allows ${image.os} only in versions "${range}"; "${image.id}" is not one of them`;
  return undefined;
}
