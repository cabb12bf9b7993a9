#!/usr/bin/env node
// Runs the TypeScript sources directly (no build step): tsx registers the loader.
import { register } from "tsx/esm/api";

register();
const { runMetalCore } = await import("../edge/core/main.ts");
process.exitCode = await runMetalCore(process.argv.slice(2));
