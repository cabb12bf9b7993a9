#!/usr/bin/env node
// Runs the TypeScript sources directly (no build step): tsx registers the loader.
// The big dependencies are imported before tsx's hooks exist: each module loaded
// through the hooks pays a round trip to tsx's loader thread, and these few
// packages are hundreds of modules, about a third of metalctl's start-up.
await Promise.all([
  import("@oclif/core"),
  import("@bufbuild/protobuf"),
  import("@bufbuild/protobuf/codegenv2"),
  import("@bufbuild/protobuf/wkt"),
  import("@connectrpc/connect"),
  import("@connectrpc/connect-node"),
  import("yaml"),
]);
const { register } = await import("tsx/esm/api");
register();
const { runMetalctl } = await import("../cli/main.ts");
process.exitCode = await runMetalctl(process.argv.slice(2));
