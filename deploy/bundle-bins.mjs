#!/usr/bin/env node
// Builds the bundles of the named bins ahead of their first start, the way the
// bins build them on first use (bin/bundle.js), so that they start on a
// read-only root filesystem (a container image, a systemd unit with
// ProtectSystem=strict): a fresh bundle is only read.
//
//   node deploy/bundle-bins.mjs metal-api masterdata-api metal-backup metalctl
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bundled, root } from "../bin/bundle.js";

const names = process.argv.slice(2);
if (names.length === 0) {
  process.stderr.write("usage: bundle-bins.mjs BIN...   (names of files in bin/, e.g. metal-api)\n");
  process.exit(2);
}
for (const name of names) {
  if (!/^[a-z][a-z-]*$/.test(name)) {
    process.stderr.write(`bundle-bins: "${name}" is not a bin name\n`);
    process.exit(2);
  }
  let source;
  try {
    source = readFileSync(join(root, "bin", `${name}.js`), "utf8");
  } catch {
    process.stderr.write(`bundle-bins: there is no bin/${name}.js\n`);
    process.exit(2);
  }
  // Every bin names its bundle and entry in one call: bundled("name", "entry.ts").
  const call = /bundled\("([^"]+)",\s*"([^"]+)"\)/.exec(source);
  if (!call) {
    process.stderr.write(`bundle-bins: bin/${name}.js does not run from a bundle\n`);
    process.exit(2);
  }
  await bundled(call[1], call[2]);
  process.stdout.write(`bundle-bins: ${name} (${call[2]})\n`);
}
