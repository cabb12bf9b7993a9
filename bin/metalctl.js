#!/usr/bin/env node
// Runs the TypeScript sources directly (no build step): tsx registers the loader.
import { register } from "tsx/esm/api";

register();
const { runMetalctl } = await import("../cli/main.ts");
process.exitCode = await runMetalctl(process.argv.slice(2));
