#!/usr/bin/env node
// Runs the TypeScript sources directly (no build step): tsx registers the loader.
import { register } from "tsx/esm/api";

register();
const { runMetalHammer } = await import("../edge/hammer/main.ts");
process.exitCode = await runMetalHammer(process.argv.slice(2));
