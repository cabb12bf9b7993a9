import type { Problem } from "./size.js";
import { isValidRange, semverOf, versionSatisfies } from "./image-version.js";

/** Problems of an os -> semver range map. */
export function imageRangeProblems(path: string, images: Record<string, string>): Problem[] {
  const problems: Problem[] = [];
  for (const [os, range] of Object.entries(images)) {
    if (os === "*") problems.push({ path: `${path}["*"]`, message: 'the OS cannot be "*"; name each OS' });
    else if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(os)) problems.push({ path: `${path}["${os}"]`, message: "OS must be lowercase letters, digits and '-'" });
    if (!isValidRange(range)) problems.push({ path: `${path}["${os}"]`, message: `"${range}" is not a semver range` });
  }
  return problems;
}

/**
 * Why an image may not run on a size with these constraints, or undefined if
 * it may. Only OSes named in the constraint are restricted, and for those the
 * image version must have a patch part and satisfy the range.
 */
export function imageRefusal(sizeId: string, images: Record<string, string>, image: { id: string; os: string; version: string }): string | undefined {
  const range = images[image.os];
  if (range === undefined) return undefined;
  if (semverOf(image.version) === undefined) {
    return `image "${image.id}" has no patch version, which size "${sizeId}" needs to check it against "${range}"`;
  }
  if (!versionSatisfies(image.version, range)) return `size "${sizeId}" allows ${image.os} only in versions "${range}"; "${image.id}" is not`;
  return undefined;
}
