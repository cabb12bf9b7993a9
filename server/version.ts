import { readFileSync } from "node:fs";

/** The release from package.json and the revision from METAL_REVISION (set by the build). */
export function readVersion(): { version: string; revision: string } {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return { version: pkg.version, revision: process.env.METAL_REVISION ?? "" };
}
