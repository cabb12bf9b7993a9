#!/usr/bin/env node
// Runs the TypeScript sources directly (no build step): tsx registers the loader.
import { register } from "tsx/esm/api";

register();
const { runMetalBmc } = await import("../edge/bmc/main.ts");
process.exitCode = await runMetalBmc(process.argv.slice(2));
